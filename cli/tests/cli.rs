//! The `tether` binary as a user runs it.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Stdio};

use tether_broker::testing::RawPeer;

fn tether() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tether"))
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("tether-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Kills the child when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Reads the child's stderr until a line contains `needle`; returns that line.
fn read_until(reader: &mut impl BufRead, needle: &str) -> String {
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader.read_line(&mut line).unwrap();
        assert!(n > 0, "stream ended before {needle:?}");
        if line.contains(needle) {
            return line;
        }
    }
}

fn keygen(dir: &TempDir, file: &str, name: &str) -> PathBuf {
    let path = dir.path(file);
    succeeds(&[
        &"keygen",
        &"--mesh",
        &"cli-mesh",
        &"--member",
        &name,
        &"--name",
        &name,
        &"--out",
        &path,
    ]);
    path
}

/// A `tether broker` process and the URL its "listening" line names.
struct Broker {
    running: Running,
    url: String,
    /// The line that says where it listens, and what it keeps.
    line: String,
}

/// Starts `tether broker` as `cmd` says (its arguments, environment) and waits
/// for the line saying where it listens; hands back the rest of its stderr.
fn spawn_broker(cmd: &mut Command) -> (Broker, BufReader<ChildStderr>) {
    let mut child = cmd.stderr(Stdio::piped()).spawn().unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let running = Running(child);
    let line = read_until(&mut err, "broker listening on");
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("ws://") || w.starts_with("wss://"))
        .unwrap()
        .to_owned();
    (Broker { running, url, line }, err)
}

/// Starts `tether broker` with `args` and keeps reading its stderr: the broker
/// keeps logging, and a reader keeps the pipe from filling.
fn start_broker<S: AsRef<OsStr>>(args: impl IntoIterator<Item = S>) -> Broker {
    let (broker, mut err) = spawn_broker(tether().arg("broker").args(args));
    std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
    broker
}

/// Starts `tether broker --open --listen 127.0.0.1:0` with `extra` arguments.
fn open_broker(extra: &[&OsStr]) -> Broker {
    let open = ["--open", "--listen", "127.0.0.1:0"].map(OsStr::new);
    start_broker(open.iter().chain(extra))
}

/// A temporary directory named after `test` with alice's and bob's identity
/// files, and an open broker.
fn alice_bob_and_a_broker(test: &str) -> (TempDir, PathBuf, PathBuf, Broker) {
    let dir = TempDir::new(test);
    let alice = keygen(&dir, "alice.json", "alice");
    let bob = keygen(&dir, "bob.json", "bob");
    (dir, alice, bob, open_broker(&[]))
}

/// Sends SIGTERM to `child`, as a service manager stops a service.
fn terminate(child: &Child) {
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
}

/// Starts `tether listen --status` as `identity` on `url` (with `extra` flags,
/// its stdout piped) and waits until it says its session is open; hands back
/// the rest of its stderr.
fn start_listener(url: &str, identity: &Path, extra: &[&str]) -> (Child, BufReader<ChildStderr>) {
    let mut listener = tether()
        .args(["listen", "--status", "--url", url])
        .args(extra)
        .arg("--identity")
        .arg(identity)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(listener.stderr.take().unwrap());
    read_until(&mut err, "open");
    (listener, err)
}

#[test]
fn demo_runs_the_whole_story_and_every_check_holds() {
    // proves L6, L7, D3, D5, X3, X10, B14, B15 (as the user sees them)
    let stdout = succeeds(&[&"demo"]);
    assert!(stdout.contains("8/8 checks held"), "{stdout}");
    assert!(stdout.contains("name resolved"), "{stdout}");
    assert!(stdout.contains("sealed for bob's key"), "{stdout}");
    assert!(stdout.contains("reconnect scheduled"));
    assert!(stdout.contains("revoked"));
}

#[test]
fn demo_json_is_one_object_per_line() {
    let stdout = succeeds(&[&"demo", &"--json"]);
    let lines: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(lines.iter().any(|l| l["what"] == "reconnect scheduled"));
    let last = lines.last().unwrap();
    assert_eq!(last["passed"], last["total"]);
}

/// What a finished `tether` run said.
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `cmd` (a `tether()` with its arguments and environment) to its end.
fn ran(cmd: &mut Command) -> Ran {
    let out = cmd.output().unwrap();
    Ran {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `tether args…` to its end.
fn run(args: &[&dyn AsRef<OsStr>]) -> Ran {
    ran(tether().args(args.iter().map(|a| a.as_ref())))
}

/// Runs `tether args…` to its end, which must be a success; its stdout.
fn succeeds(args: &[&dyn AsRef<OsStr>]) -> String {
    let out = run(args);
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    out.stdout
}

#[test]
fn sim_hosted_runs_the_hosted_campaign_and_replay_reruns_one_seed() {
    // proves X2 from the command line: `--hosted` runs the hosted session beside
    // its server model (not the mesh), and `--replay` is the seed's own run, its
    // trace hash the simulator's for that seed, for either campaign.
    let campaign = succeeds(&[&"sim", &"--hosted", &"--seeds", &"40", &"--from", &"7"]);
    assert!(
        campaign.contains("40 seeds (7..47) held every invariant"),
        "{campaign}"
    );
    assert!(campaign.contains("control requests"), "{campaign}");
    let hosted = succeeds(&[&"sim", &"--hosted", &"--replay", &"9"]);
    let trace = tether_sim::hosted::run_hosted_seed(9, true).trace_hash;
    assert!(hosted.contains(&format!("trace {trace:016x}")), "{hosted}");
    assert!(hosted.contains("seed 9 held every invariant"), "{hosted}");
    let mesh = succeeds(&[&"sim", &"--replay", &"9"]);
    let trace = tether_sim::run_seed(9, true).trace_hash;
    assert!(mesh.contains(&format!("trace {trace:016x}")), "{mesh}");
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn keygen_writes_a_private_file_and_keeps_the_secret_off_the_screen() {
    // proves X5
    let dir = TempDir::new("keygen");
    let path = dir.path("me.json");
    let stdout = succeeds(&[&"keygen", &"--out", &path]);
    let file: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let secret = file["secretKey"].as_str().unwrap();
    assert_eq!(secret.len(), 128);
    assert!(stdout.contains(file["pubkey"].as_str().unwrap()));
    assert!(!stdout.contains(secret), "the secret must not be printed");
    #[cfg(unix)]
    assert_eq!(mode(&path), 0o600);
    // Never overwritten: a usage error, exit code 2, one line.
    let again = run(&[&"keygen", &"--out", &path]);
    assert_eq!(again.code, Some(2), "{}", again.stderr);
    assert_eq!(again.stderr.lines().count(), 1, "{}", again.stderr);
    // Printed only when asked.
    let shown = succeeds(&[&"keygen", &"--print-secret", &"--out", &dir.path("two.json")]);
    let two: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path("two.json")).unwrap()).unwrap();
    assert!(shown.contains(two["secretKey"].as_str().unwrap()));
}

#[test]
fn send_and_listen_round_trip_through_a_broker() {
    // proves B1, B7, B14, B15, B17: bob listens as his session, alice writes
    // "bob", the name resolves to bob's session key and the message is sealed.
    let (dir, alice, bob, broker) = alice_bob_and_a_broker("roundtrip");
    let url = broker.url.clone();

    let (mut listener, _listen_err) = start_listener(&url, &bob, &["--count", "1"]);
    let listen_out = listener.stdout.take().unwrap();
    let listener = Running(listener);

    // The sender takes its broker and identity from a config file.
    let config = dir.path("config.json");
    let settings = serde_json::json!({"url": url, "identity": alice});
    std::fs::write(&config, settings.to_string()).unwrap();
    let send_as_configured = |to: &str, text: &str| {
        ran(tether()
            .args(["send", "--config"])
            .arg(&config)
            .args([to, text])
            .env_remove("TETHER_URL")
            .env_remove("TETHER_IDENTITY"))
    };
    let sent = send_as_configured("bob", "hello from the command line");
    assert_eq!(sent.code, Some(0), "{}", sent.stderr);
    assert!(sent.stdout.starts_with("sent "), "{}", sent.stdout);

    let mut heard = String::new();
    BufReader::new(listen_out).read_line(&mut heard).unwrap();
    assert_eq!(heard.trim(), "alice: hello from the command line");

    // B17: the listener is bob's persisted session, a `session` peer; the
    // one-shot commands (alice's send, this peers call) are control-plane and
    // not in the default list; --json keeps role and peerRole apart.
    let session_file = dir.path("bob.json.session.json");
    #[cfg(unix)]
    assert_eq!(mode(&session_file), 0o600);
    let session: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&session_file).unwrap()).unwrap();
    let peers = succeeds(&[&"peers", &"--json", &"--url", &url, &"--identity", &alice]);
    let rows: Vec<serde_json::Value> = peers.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["displayName"], "bob");
    assert_eq!(rows[0]["peerRole"], "session");
    assert_eq!(rows[0]["pubkey"], session["sessionPubkey"]);
    assert_eq!(rows[0]["sessionId"], session["sessionId"]);
    assert!(rows[0].get("role").is_none(), "no profile role was set: {rows:?}");

    // B15, B16: a name nobody has is never sent and permanent: exit 3 with what
    // went wrong, not 4 "retry" (what the real broker's error ack made of it).
    let nobody = send_as_configured("nobody", "anyone there?");
    let err = nobody.stderr;
    assert_eq!(nobody.code, Some(3), "{err}");
    assert!(err.contains("no peer is named \"nobody\""), "{err}");
    assert!(!err.contains("may have been delivered"), "never sent: {err}");
    let mut listener = listener;
    assert!(listener.0.wait().unwrap().success());
}

/// `tether send` of "hi" to bob as `identity` to `url`, with `extra` flags:
/// for the failures that come before, or instead of, a broker.
fn send_hi(url: &str, identity: &Path, extra: &[&dyn AsRef<OsStr>]) -> Ran {
    let to: [&dyn AsRef<OsStr>; 5] = [&"send", &"--url", &url, &"--identity", &identity];
    run(&[&to[..], extra, &[&"bob", &"hi"]].concat())
}

#[test]
fn an_unreachable_broker_is_a_transient_failure_in_one_line() {
    let dir = TempDir::new("unreachable");
    let alice = keygen(&dir, "alice.json", "alice");
    // Port 1 on loopback: nothing listens there.
    let out = send_hi("ws://127.0.0.1:1/ws", &alice, &[]);
    let err = out.stderr;
    assert_eq!(out.code, Some(4), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains("nothing listens there"), "{err}");
}

#[test]
fn a_bad_url_scheme_or_ca_file_is_a_usage_error_naming_the_flag() {
    let dir = TempDir::new("badflags");
    let alice = keygen(&dir, "alice.json", "alice");
    let out = send_hi("http://127.0.0.1:1/ws", &alice, &[]);
    let err = out.stderr;
    assert_eq!(out.code, Some(2), "{err}");
    assert!(err.contains("--url"), "{err}");
    let missing = dir.path("no-such-ca.pem");
    let out = send_hi("wss://127.0.0.1:1/ws", &alice, &[&"--ca", &missing]);
    let err = out.stderr;
    assert_eq!(out.code, Some(2), "{err}");
    assert!(err.contains("--ca") && err.contains("no-such-ca.pem"), "{err}");
}

#[test]
fn a_missing_identity_is_a_usage_error_that_says_what_to_do() {
    let dir = TempDir::new("noid");
    let out = ran(tether()
        .args(["peers", "--config"])
        .arg(dir.path("absent.json"))
        .env_remove("TETHER_IDENTITY"));
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    let out = ran(tether()
        .args(["peers"])
        .env("HOME", &dir.0)
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("TETHER_IDENTITY")
        .env_remove("TETHER_CONFIG"));
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("tether keygen"), "{}", out.stderr);
}

#[cfg(unix)]
#[test]
fn sigterm_closes_every_client_with_1001() {
    // proves X15 (graceful shutdown): SIGTERM, as a service manager sends it, closes
    // every connection with 1001 `shutting down`, never a bare 1006.
    let mut broker = open_broker(&[]);
    assert!(broker.line.contains("lost on restart"), "{}", broker.line);
    let mut clients = [
        RawPeer::connect(&broker.url).unwrap(),
        RawPeer::connect(&broker.url).unwrap(),
    ];
    terminate(&broker.running.0);
    for client in &mut clients {
        assert_eq!(client.read_close().unwrap(), (1001, "shutting down".to_owned()));
    }
    let status = broker.running.0.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

/// The roster the broker reads with `--members`: one member of `cli-mesh`.
fn members_file(dir: &TempDir, identity: &Path, name: &str, revoked: bool) -> PathBuf {
    let file: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(identity).unwrap()).unwrap();
    let roster = serde_json::json!({"meshes": {"cli-mesh": {"members": [{
        "memberId": name, "pubkey": file["pubkey"], "displayName": name, "revoked": revoked,
    }]}}});
    let path = dir.path("members.json");
    std::fs::write(&path, roster.to_string()).unwrap();
    path
}

#[cfg(unix)]
#[test]
fn listen_exits_with_the_reason_when_a_reconnect_is_refused_for_good() {
    // proves D3 through the CLI: bob listens, the broker restarts with bob revoked,
    // and the reconnect's rejection ends `listen` with exit 3 and the broker's
    // reason on stderr, instead of a client that waits for ever (issue 15).
    let dir = TempDir::new("listen-stop");
    let bob = keygen(&dir, "bob.json", "bob");
    let members = members_file(&dir, &bob, "bob", false);
    let with_members =
        |listen: &str| start_broker([OsStr::new(listen), OsStr::new("--members"), members.as_os_str()]);
    let mut broker = with_members("--listen=127.0.0.1:0");
    let url = broker.url.clone();

    let (listener, mut listen_err) = start_listener(&url, &bob, &[]);
    let listener = Running(listener);

    // The broker goes away (1001: a restart, so bob reconnects) and comes back
    // on the same port with bob revoked.
    terminate(&broker.running.0);
    broker.running.0.wait().unwrap();
    members_file(&dir, &bob, "bob", true);
    let address = url
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let _broker = with_members(&format!("--listen={address}"));

    // Everything listen says until it exits; a thread so that a listen that never
    // exits fails the test instead of hanging it.
    let (said, heard) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut listen_err, &mut rest);
        let _ = said.send(rest);
    });
    let stderr = heard
        .recv_timeout(std::time::Duration::from_secs(120))
        .expect("listen kept running after a permanent rejection");
    let mut listener = listener;
    let status = listener.0.wait().unwrap();
    assert_eq!(status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("revoked"), "{stderr}");
    // The restart itself was announced as one (X15: 1001, not a bare 1006).
    assert!(stderr.contains("closed with code 1001"), "{stderr}");
}

#[test]
fn a_broker_whose_stderr_is_closed_keeps_serving() {
    // A broker started by a supervisor that later goes away (or `tether broker |
    // head`) loses its stderr. Its log must not take it down: before, the first
    // log line after that panicked (EPIPE), and clients saw a bare 1006.
    let dir = TempDir::new("stderr-closed");
    let alice = keygen(&dir, "alice.json", "alice");
    let (mut broker, broker_err) = spawn_broker(
        tether()
            .args(["broker", "--open", "--listen", "127.0.0.1:0"])
            .env("RUST_LOG", "info"),
    );
    let url = broker.url.clone();
    drop(broker_err);

    // Each connection logs; each must still be served.
    for _ in 0..3 {
        succeeds(&[&"peers", &"--all", &"--url", &url, &"--identity", &alice]);
    }
    let mut client = RawPeer::connect(&url).unwrap();
    terminate(&broker.running.0);
    // The shutdown, logged too, still closes everyone properly and exits cleanly.
    assert_eq!(client.read_close().unwrap(), (1001, "shutting down".to_owned()));
    let status = broker.running.0.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

#[test]
fn a_hello_rate_of_zero_is_a_usage_error() {
    // `tether broker --hello-rate N` sets the broker core's GCRA admission;
    // zero would admit nobody, so it is refused before anything starts.
    let out = run(&[
        &"broker",
        &"--open",
        &"--listen",
        &"127.0.0.1:0",
        &"--hello-rate",
        &"0",
    ]);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("--hello-rate"), "{}", out.stderr);
}

/// Waits for `child` to exit, at most `patience` (a bound on a hang, not a
/// pace): the exit is waited on, and a child still running then is killed.
fn exit_within(child: Child, patience: std::time::Duration) -> Option<std::process::ExitStatus> {
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut child = child;
        let _ = tx.send(child.wait());
    });
    match rx.recv_timeout(patience) {
        Ok(status) => Some(status.unwrap()),
        Err(_) => {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
            None
        }
    }
}

#[test]
fn listen_ends_quietly_when_its_reader_goes_away() {
    // `tether listen | head -1`: once head has gone, the next push finds stdout
    // closed; listen must close its session and exit 0, not panic in println!
    // (exit 101) nor keep printing into the void for ever.
    let (_dir, alice, bob, broker) = alice_bob_and_a_broker("closed-stdout");
    let url = broker.url.clone();
    let (mut listener, mut listen_err) = start_listener(&url, &bob, &[]);
    // The reader goes away before anything was printed.
    drop(listener.stdout.take());
    let stderr = std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut listen_err, &mut rest);
        rest
    });
    succeeds(&[
        &"send",
        &"--url",
        &url,
        &"--identity",
        &alice,
        &"bob",
        &"into a closed pipe",
    ]);
    let status = exit_within(listener, std::time::Duration::from_secs(60));
    let rest = stderr.join().unwrap();
    let status = status.unwrap_or_else(|| panic!("listen kept running with its reader gone\n{rest}"));
    assert!(status.success(), "{status:?}\n{rest}");
    assert!(!rest.contains("panicked"), "{rest}");
}

#[test]
fn a_client_certificate_from_cert_and_key_gets_through_a_broker_requiring_one() {
    // proves S9 as the user runs it: --cert/--key present a client certificate;
    // without them a broker started with --tls-client-ca refuses the handshake.
    use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};
    let dir = TempDir::new("mtls");
    let alice = keygen(&dir, "alice.json", "alice");
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let issue = |name: &str, usage: ExtendedKeyUsagePurpose, file: &str| {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec![name.to_owned()]).unwrap();
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &issuer).unwrap();
        let (cert_path, key_path) = (dir.path(&format!("{file}.pem")), dir.path(&format!("{file}.key")));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (cert_path, key_path)
    };
    let ca_path = dir.path("ca.pem");
    std::fs::write(&ca_path, ca.pem()).unwrap();
    let (server_cert, server_key) = issue("127.0.0.1", ExtendedKeyUsagePurpose::ServerAuth, "server");
    let (client_cert, client_key) = issue("alice", ExtendedKeyUsagePurpose::ClientAuth, "client");
    let broker = open_broker(&[
        "--tls-cert".as_ref(),
        server_cert.as_os_str(),
        "--tls-key".as_ref(),
        server_key.as_os_str(),
        "--tls-client-ca".as_ref(),
        ca_path.as_os_str(),
    ]);
    let url = broker.url.clone();
    assert!(url.starts_with("wss://"), "{url}");
    let peers = [
        &"peers",
        &"--all",
        &"--url",
        &url,
        &"--ca",
        &ca_path,
        &"--identity",
        &alice,
    ] as [&dyn AsRef<OsStr>; 8];
    let refused = run(&peers);
    assert_ne!(refused.code, Some(0), "{}", refused.stdout);
    let with_cert = [&"--cert", &client_cert, &"--key", &client_key] as [&dyn AsRef<OsStr>; 4];
    succeeds(&[&peers[..], &with_cert[..]].concat());
    // Half a pair is a usage error, refused before connecting.
    let half = run(&[
        &"peers",
        &"--url",
        &url,
        &"--identity",
        &alice,
        &"--cert",
        &client_cert,
    ]);
    assert_eq!(half.code, Some(2), "{}", half.stderr);
}
