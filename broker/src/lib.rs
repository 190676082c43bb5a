//! tether-broker (being built).
