//! A protocol of your own on tether-tokio: a bearer-header endpoint (the crate
//! docs' `Bearer` handshake) driven by the generic host in a few lines, against
//! a server this example starts on 127.0.0.1.
//!
//!     cargo run -p tether-tokio --example own_protocol_async

use std::convert::Infallible;
use std::time::Instant;

use futures_util::{SinkExt, StreamExt};
use tether_proto::lifecycle::{Config, Handshake, HelloError, Lifecycle, Notification, PreOpen};
use tether_tokio::{GenericClient, Transport};
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::Message;

/// Your protocol: a fresh bearer token in the headers of every attempt, no
/// hello (the open socket is the handshake), every text frame handed up.
struct Bearer {
    issued: u64,
}

impl Handshake for Bearer {
    type Message = String;
    type DecodeError = Infallible;

    fn headers(&mut self, _attempt: u64, _unix_ms: u64) -> Result<Vec<(String, String)>, HelloError> {
        self.issued += 1;
        Ok(vec![(
            "Authorization".into(),
            format!("Bearer token-{}", self.issued),
        )])
    }

    fn hello(&mut self, _: u64, _: u64) -> Result<Option<String>, HelloError> {
        Ok(None)
    }

    fn decode(&mut self, text: String) -> Result<String, Infallible> {
        Ok(text)
    }

    fn classify(&mut self, _: &String) -> PreOpen {
        PreOpen::Other
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The server: refuses an upgrade without a bearer token, echoes text.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("ws://{}/", listener.local_addr()?);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                #[allow(clippy::result_large_err)]
                let check = |req: &Request, res: Response| {
                    let authorized = req
                        .headers()
                        .get("authorization")
                        .is_some_and(|v| v.as_bytes().starts_with(b"Bearer "));
                    if authorized {
                        Ok(res)
                    } else {
                        Err(tokio_tungstenite::tungstenite::http::Response::builder()
                            .status(401)
                            .body(None)
                            .unwrap_or_default())
                    }
                };
                let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, check).await else {
                    return;
                };
                while let Some(Ok(Message::Text(text))) = ws.next().await {
                    let _ = ws.send(Message::Text(format!("echo: {text}").into())).await;
                }
            });
        }
    });

    // The client: your handshake in the generic lifecycle, on the generic host.
    let machine = Lifecycle::new(Config::new(&url), Bearer { issued: 0 }, 7, Instant::now())?;
    let client = GenericClient::connect(machine, &url, &Transport::default()).await?;
    let mut events = client.events();
    client.with(|lc, _| lc.send("hello".into())).await??;
    while let Some(event) = events.recv().await {
        if let Notification::Message(text) = event {
            println!("{text}");
            assert_eq!(text, "echo: hello");
            break;
        }
    }
    client.close().await;
    Ok(())
}
