//! `tether`: see the README for a tour. Every error is one line on stderr (what
//! failed, the broker's reason, what to do) and an exit code that says whose
//! fault it was: 2 usage, 3 permanent rejection, 4 transient failure, 1 other.

mod cmd;
mod fail;
mod stderr;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use cmd::client::{ConnectArgs, PriorityArg, StateCmd};
use fail::Failure;

/// Keep a WebSocket session to a message broker alive and honest.
#[derive(Parser, Debug)]
#[command(name = "tether", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the story: an embedded broker, two clients, an outage, a revoked key.
    Demo {
        /// Emit the timeline as JSON lines.
        #[arg(long, default_value_t = false)]
        json: bool,
    },
    /// Run a deterministic simulation campaign: one seed, one reproducible run.
    ///
    /// The mesh by default (real sessions, the real broker core, faults on a
    /// simulated network); with --hosted, the hosted session beside a model of its
    /// server. A broken invariant prints the line that replays its seed.
    #[command(verbatim_doc_comment)]
    Sim {
        /// How many seeds.
        #[arg(long, default_value_t = 1000)]
        seeds: u64,
        /// The first seed.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Simulate the hosted session instead of the mesh.
        #[arg(long, default_value_t = false)]
        hosted: bool,
        /// Run only this seed, with its trace, and print the trace's tail.
        #[arg(long, value_name = "SEED", conflicts_with_all = ["seeds", "from"])]
        replay: Option<u64>,
    },
    /// Run the reference broker until Ctrl-C or SIGTERM.
    ///
    /// Everything is kept in memory only: presences, shared state, memories, queued
    /// and unconfirmed messages, dedupe ids. A restart loses all of it (clients
    /// reconnect on their own: every connection is closed with 1001). Every buffer is
    /// bounded; see RELIABILITY.md for the bounds and what breaching one does.
    #[command(verbatim_doc_comment)]
    Broker(cmd::broker::BrokerArgs),
    /// Write a new member identity (secret + public key) to a file with mode 0600.
    Keygen {
        /// Where to write it.
        #[arg(long)]
        out: PathBuf,
        /// Mesh id.
        #[arg(long, default_value = "mesh-1")]
        mesh: String,
        /// Member id.
        #[arg(long, default_value = "member-1")]
        member: String,
        /// Display name announced to peers.
        #[arg(long)]
        name: Option<String>,
        /// Also print the secret key (it is always in the file).
        #[arg(long, default_value_t = false)]
        print_secret: bool,
    },
    /// Print pushes as they arrive, until Ctrl-C.
    Listen {
        #[command(flatten)]
        conn: ConnectArgs,
        /// One JSON object per line instead of text.
        #[arg(long, default_value_t = false)]
        json: bool,
        /// Stop after this many messages.
        #[arg(long)]
        count: Option<usize>,
    },
    /// Send a message and wait for the broker's ack.
    Send {
        #[command(flatten)]
        conn: ConnectArgs,
        /// Display name (resolved to its key first), 64-hex pubkey, @group, #topic or *.
        target: String,
        /// The text.
        message: String,
        /// Delivery priority.
        #[arg(long, value_enum, default_value = "next")]
        priority: PriorityArg,
    },
    /// List the mesh's peers (control-plane peers only with --all).
    Peers {
        #[command(flatten)]
        conn: ConnectArgs,
        /// Include control-plane peers.
        #[arg(long, default_value_t = false)]
        all: bool,
        /// One JSON object per line.
        #[arg(long, default_value_t = false)]
        json: bool,
    },
    /// Read or write shared state.
    State {
        #[command(flatten)]
        conn: ConnectArgs,
        #[command(subcommand)]
        cmd: StateCmd,
    },
    /// Store a memory in the mesh.
    Remember {
        #[command(flatten)]
        conn: ConnectArgs,
        /// What to remember.
        text: String,
        /// Tags to file it under.
        #[arg(long = "tag")]
        tags: Vec<String>,
    },
    /// Search the mesh's memories.
    Recall {
        #[command(flatten)]
        conn: ConnectArgs,
        /// What to look for.
        query: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Broker(_)) {
        // Quiet by default: the commands print what matters; RUST_LOG=tether=info shows every step.
        init_logs("off");
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.report(),
    }
}

/// Logs to stderr at `default` unless RUST_LOG says otherwise.
fn init_logs(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| stderr::Stderr)
        .try_init();
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            Failure::local(
                format!("cannot start the async runtime: {e}"),
                "check system limits",
            )
        })
}

fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Demo { json } => runtime()?.block_on(cmd::demo::run(json)),
        Command::Sim {
            seeds,
            from,
            hosted,
            replay,
        } => {
            let campaign = if hosted {
                cmd::sim::Campaign::HOSTED
            } else {
                cmd::sim::Campaign::MESH
            };
            match replay {
                Some(seed) => cmd::sim::replay(campaign, seed),
                None => cmd::sim::run(campaign, seeds, from),
            }
        }
        Command::Broker(args) => {
            // A broker is a service: its log is its output.
            init_logs("info");
            runtime()?.block_on(cmd::broker::run(args))
        }
        Command::Keygen {
            out,
            mesh,
            member,
            name,
            print_secret,
        } => cmd::keygen::run(&out, &mesh, &member, name, print_secret),
        Command::Listen { conn, json, count } => runtime()?.block_on(cmd::client::listen(&conn, json, count)),
        Command::Send {
            conn,
            target,
            message,
            priority,
        } => runtime()?.block_on(cmd::client::send(&conn, &target, &message, priority)),
        Command::Peers { conn, all, json } => runtime()?.block_on(cmd::client::peers(&conn, all, json)),
        Command::State { conn, cmd } => runtime()?.block_on(cmd::client::state(&conn, &cmd)),
        Command::Remember { conn, text, tags } => {
            runtime()?.block_on(cmd::client::remember(&conn, &text, tags))
        }
        Command::Recall { conn, query } => runtime()?.block_on(cmd::client::recall(&conn, &query)),
    }
}
