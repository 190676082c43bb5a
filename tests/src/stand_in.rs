//! The accept loop of every stand-in server the suites start (the hello
//! recorder, the hosted-session server, the CONNECT proxy): a listener on
//! 127.0.0.1 port 0 that serves each connection on a task of its own and
//! stops accepting when dropped.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A listening stand-in; it stops accepting when dropped (connections being
/// served end with the test's runtime).
#[derive(Debug)]
pub struct Listening {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Listening {
    /// Listens on 127.0.0.1, port 0, and hands each accepted connection to
    /// `serve`, whose future runs on a task of its own.
    pub async fn start<F>(serve: impl Fn(TcpStream) -> F + Send + 'static) -> Listening
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let listener = match TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await {
            Ok(l) => l,
            Err(e) => panic!("cannot bind: {e}"),
        };
        let addr = match listener.local_addr() {
            Ok(a) => a,
            Err(e) => panic!("no address: {e}"),
        };
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                tokio::spawn(serve(tcp));
            }
        });
        Listening { addr, task }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Locks what a stand-in shares with its connections' tasks; a task that
/// panicked holding it leaves its record readable, not poisoned.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
