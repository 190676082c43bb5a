//! `tether broker`: the reference broker as a long-running process.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use tether_broker::{BrokerConfig, BrokerServer, Membership, ServerConfig, SkillBook, TlsFiles, TlsSetup};
use tracing::info;

use crate::fail::Failure;
use crate::stderr::say;

/// Options of `tether broker`.
#[derive(Args, Debug)]
pub struct BrokerArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7878")]
    pub listen: SocketAddr,
    /// JSON file of meshes and their members' public keys.
    #[arg(long, conflicts_with = "open", required_unless_present = "open")]
    pub members: Option<PathBuf>,
    /// Admit any correctly signed key to any mesh.
    #[arg(long, default_value_t = false)]
    pub open: bool,
    /// JSON file of skills served by list_skills/get_skill.
    #[arg(long)]
    pub skills: Option<PathBuf>,
    /// PEM certificate chain for wss://.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for wss://.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// PEM file of CAs: require every client to present a certificate issued
    /// by one of them (mTLS); a client without one fails the TLS handshake.
    #[arg(long, requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
    /// Presences (open and in their 90 s grace) allowed per mesh.
    #[arg(long, default_value_t = tether_broker::core::DEFAULT_MAX_CONNECTIONS_PER_MESH)]
    pub max_connections_per_mesh: usize,
    /// Presences one member may hold per mesh.
    #[arg(long, default_value_t = BrokerConfig::default().max_connections_per_member)]
    pub max_connections_per_member: usize,
    /// Largest send payload (ciphertext, nonce and target), in bytes.
    #[arg(long, default_value_t = tether_broker::core::DEFAULT_MAX_MESSAGE_BYTES)]
    pub max_message_bytes: usize,
    /// Hellos admitted per second (GCRA, a burst of a tenth of that); the rest
    /// are told `capacity` with the wait in `retryAfterMs`. Unlimited if unset.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub hello_rate: Option<u32>,
}

/// Runs until Ctrl-C or SIGTERM, then closes every connection with 1001 and exits.
pub async fn run(args: BrokerArgs) -> Result<(), Failure> {
    let membership = match &args.members {
        Some(path) => Membership::from_file(path)
            .map_err(|e| Failure::usage(format!("cannot load members: {e}"), "fix the members file"))?,
        None => Membership::Open,
    };
    let skills = match &args.skills {
        Some(path) => SkillBook::from_file(path)
            .map_err(|e| Failure::usage(format!("cannot load skills: {e}"), "fix the skills file"))?,
        None => SkillBook::default(),
    };
    let tls = match (args.tls_cert, args.tls_key) {
        (Some(cert_pem_path), Some(key_pem_path)) => Some(TlsSetup::Files(TlsFiles {
            cert_pem_path,
            key_pem_path,
            client_ca_pem_path: args.tls_client_ca,
        })),
        _ => None,
    };
    let config = ServerConfig {
        broker: BrokerConfig {
            membership,
            skills,
            seed: seed(),
            max_connections_per_mesh: args.max_connections_per_mesh,
            max_connections_per_member: args.max_connections_per_member,
            max_payload: args.max_message_bytes,
            // The envelope around a full payload still fits a frame.
            max_frame_len: args.max_message_bytes.saturating_add(16 * 1024),
            hello_rate: args.hello_rate.map(tether_broker::core::HelloRate::per_second),
            ..BrokerConfig::default()
        },
        ..ServerConfig::default()
    };
    let config = ServerConfig {
        max_message_size: config.broker.max_frame_len,
        ..config
    };
    let stop = StopSignal::install()?;
    let handle = BrokerServer::start(config, args.listen, tls).await.map_err(|e| {
        Failure::local(
            format!("cannot start the broker on {}: {e}", args.listen),
            "choose another --listen address",
        )
    })?;
    info!(url = %handle.url(), "broker listening");
    say!(
        "broker listening on {} (Ctrl-C or SIGTERM to stop; everything is kept in memory and lost on restart)",
        handle.url()
    );
    stop.wait().await;
    say!("stopping: closing every connection with 1001");
    handle.stop().await;
    Ok(())
}

/// Ctrl-C and SIGTERM (what service managers and `docker stop` send), caught
/// from the moment this is made. It is made before the broker says it is
/// listening: a supervisor that stops the broker as soon as it reads that line
/// must reach this handler, not the signal's default action, which ends the
/// process without closing anyone (clients saw a bare EOF, never 1001).
struct StopSignal {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
}

impl StopSignal {
    fn install() -> Result<Self, Failure> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let catch = |kind: SignalKind, name: &str| {
                signal(kind).map_err(|e| {
                    Failure::local(
                        format!("cannot catch {name}: {e}"),
                        "check the process's signal mask",
                    )
                })
            };
            Ok(StopSignal {
                term: catch(SignalKind::terminate(), "SIGTERM")?,
                interrupt: catch(SignalKind::interrupt(), "SIGINT")?,
            })
        }
        #[cfg(not(unix))]
        Ok(StopSignal {})
    }

    async fn wait(self) {
        #[cfg(unix)]
        {
            let StopSignal {
                mut term,
                mut interrupt,
            } = self;
            tokio::select! {
                _ = term.recv() => {}
                _ = interrupt.recv() => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}
