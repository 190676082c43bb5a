//! What one mesh connection needs: tether-host's one configuration.

/// Everything one connection needs (the same type as tether-tokio's `ClientConfig`).
pub type ConnConfig = tether_host::MeshConfig;
