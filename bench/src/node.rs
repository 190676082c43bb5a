//! The seeds' client on Node as a child process (`bench/node/runner.ts`),
//! driven line by line: the Node rows of the loopback and CPU benches.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

/// A running `runner.ts`: one command line in, one answer line out.
pub struct NodeRunner {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl NodeRunner {
    /// Starts `node --import tsx runner.ts URL CONNS` in `dir` and waits for
    /// its `ready`, said once its `conns` clients are connected.
    pub fn start(dir: &str, url: &str, conns: usize) -> NodeRunner {
        let mut child = match Command::new("node")
            .args(["--import", "tsx", "runner.ts", url, &conns.to_string()])
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
        {
            Ok(c) => c,
            Err(e) => panic!("cannot start node in {dir}: {e}"),
        };
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            panic!("node's pipes");
        };
        let mut node = NodeRunner {
            child,
            stdin,
            stdout: BufReader::new(stdout),
        };
        let ready = node.line();
        assert_eq!(ready.trim(), "ready", "the Node runner connects its clients");
        node
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        match self.stdout.read_line(&mut line) {
            Ok(n) if n > 0 => line,
            other => panic!("the Node runner stopped: {other:?}"),
        }
    }

    /// Sends one command (`round …`, `cpu …`); the runner's answer, trimmed.
    pub fn ask(&mut self, cmd: &str) -> String {
        if let Err(e) = writeln!(self.stdin, "{cmd}") {
            panic!("the Node runner stopped: {e}");
        }
        self.line().trim().to_owned()
    }

    /// Tells the runner to quit and waits for it to exit.
    pub fn stop(mut self) {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.child.wait();
    }
}
