//! The seam between the generic lifecycle and a concrete protocol.

use std::fmt;

use super::Rejection;

/// What a frame received before the connection is open means to the handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PreOpen {
    /// The broker accepted the hello: the connection is open (L3).
    Ack,
    /// The broker refused the hello (its `error` frame); it will usually close next.
    Rejection(Rejection),
    /// Anything else: handed to the application unchanged.
    Other,
}

/// An error building an attempt's hello or headers (L13): expired credentials,
/// a signer that failed, …
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct HelloError(pub String);

/// The only protocol knowledge the lifecycle has.
///
/// It builds what an attempt sends (headers when the socket is requested, the
/// hello once it opens — both fresh for every attempt, S1, D8) and decodes and
/// classifies what arrives. Decoding happens here, once, so the application gets
/// the decoded message and no frame is parsed twice.
pub trait Handshake {
    /// A decoded inbound frame.
    type Message: fmt::Debug;
    /// Why a frame could not be decoded (L5: counted and dropped, never fatal).
    type DecodeError: fmt::Debug + fmt::Display;

    /// Request headers for attempt `attempt` (1-based) at wall-clock `unix_ms`.
    fn headers(&mut self, attempt: u64, unix_ms: u64) -> Result<Vec<(String, String)>, HelloError> {
        let _ = (attempt, unix_ms);
        Ok(Vec::new())
    }

    /// The hello to send when the socket opens, or `None` when the socket itself
    /// is the handshake (header-authenticated endpoints open at once).
    fn hello(&mut self, attempt: u64, unix_ms: u64) -> Result<Option<String>, HelloError>;

    /// Decodes one text frame.
    fn decode(&mut self, text: String) -> Result<Self::Message, Self::DecodeError>;

    /// Says what a message received before open means.
    fn classify(&mut self, message: &Self::Message) -> PreOpen;
}
