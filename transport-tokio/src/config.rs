//! What a mesh client needs to connect: tether-host's one configuration.

/// Everything `Client::connect` needs (the same type as tether-mio's `ConnConfig`).
pub type ClientConfig = tether_host::MeshConfig;
