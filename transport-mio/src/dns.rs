//! Name resolution off the reactor thread.
//!
//! `getaddrinfo` blocks, for seconds when a resolver is slow, so lookups run on
//! a few helper threads and come back through a channel and the reactor's
//! waker; the other connections keep running meanwhile.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use mio::Waker;
use tether_proto::lifecycle::SocketId;

use crate::reactor::ConnId;

/// Helper threads; a few, so one slow name does not hold up every other lookup.
const RESOLVER_THREADS: usize = 2;

/// One finished lookup.
pub(crate) struct Resolved {
    pub conn: ConnId,
    pub socket: SocketId,
    pub result: Result<Vec<SocketAddr>, String>,
}

struct Job {
    conn: ConnId,
    socket: SocketId,
    host: String,
    port: u16,
}

/// The lookup threads, started on the first name that needs one (IP literals
/// never do), joined when the reactor is dropped.
pub(crate) struct Resolver {
    waker: Arc<Waker>,
    jobs: Option<Sender<Job>>,
    done_tx: Sender<Resolved>,
    done_rx: Receiver<Resolved>,
    threads: Vec<JoinHandle<()>>,
}

impl Resolver {
    pub(crate) fn new(waker: Arc<Waker>) -> Self {
        let (done_tx, done_rx) = mpsc::channel();
        Resolver {
            waker,
            jobs: None,
            done_tx,
            done_rx,
            threads: Vec::new(),
        }
    }

    /// Starts looking up `host`; the answer comes out of [`Resolver::finished`].
    pub(crate) fn resolve(
        &mut self,
        conn: ConnId,
        socket: SocketId,
        host: &str,
        port: u16,
    ) -> Result<(), String> {
        let jobs = match &self.jobs {
            Some(jobs) => jobs,
            None => self.start()?,
        };
        let job = Job {
            conn,
            socket,
            host: host.to_owned(),
            port,
        };
        jobs.send(job)
            .map_err(|_| "the resolver threads stopped".to_owned())
    }

    /// Lookups finished since the last call.
    pub(crate) fn finished(&self) -> impl Iterator<Item = Resolved> + '_ {
        self.done_rx.try_iter()
    }

    fn start(&mut self) -> Result<&Sender<Job>, String> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..RESOLVER_THREADS {
            let rx = Arc::clone(&rx);
            let done = self.done_tx.clone();
            let waker = Arc::clone(&self.waker);
            let thread = std::thread::Builder::new()
                .name(format!("tether-dns-{i}"))
                .spawn(move || lookups(&rx, &done, &waker))
                .map_err(|e| format!("cannot start a resolver thread: {e}"))?;
            self.threads.push(thread);
        }
        Ok(self.jobs.insert(tx))
    }
}

fn lookups(jobs: &Mutex<Receiver<Job>>, done: &Sender<Resolved>, waker: &Waker) {
    loop {
        // The lock is held only while waiting for a job, never during a lookup.
        let job = jobs.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(job) = job else { return };
        let result = (job.host.as_str(), job.port)
            .to_socket_addrs()
            .map(Iterator::collect)
            .map_err(|e| format!("IO error: {e}"));
        let resolved = Resolved {
            conn: job.conn,
            socket: job.socket,
            result,
        };
        if done.send(resolved).is_err() {
            return;
        }
        // A failed wake leaves the answer queued until the reactor's next turn.
        let _ = waker.wake();
    }
}

impl Drop for Resolver {
    fn drop(&mut self) {
        // Closing the job channel ends every thread after its current lookup;
        // joining them means a dropped reactor leaves nothing running (D1).
        self.jobs = None;
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}
