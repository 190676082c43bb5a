//! tether-mio (being built).
