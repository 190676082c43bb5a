//! The close and rejection table: which endings are worth another attempt.
//!
//! Policy is data. Each [`Rule`] matches a close code (optionally with its reason)
//! or a rejection code from the broker's `error` frame, and says reconnect,
//! reconnect a limited number of times, or stop. [`ClosePolicy::default`] is the
//! mesh broker's table (`../shared/PROTOCOL.md`, corrected by the real broker's
//! source); [`ClosePolicy::hosted`] is the hosted-session endpoint's, where one
//! code means something else.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::lifecycle::{ConnectFailureKind, Failure, PeerClose};

/// How many times a 4001 (session not found) is retried (`MAX_SESSION_NOT_FOUND_RETRIES`
/// in sessions-websocket.ts).
pub const SESSION_NOT_FOUND_RETRIES: u32 = 3;
/// Step of the linear 4001 delay, 2 s × n (`RECONNECT_DELAY_MS` in sessions-websocket.ts).
pub const SESSION_NOT_FOUND_STEP: Duration = Duration::from_secs(2);
/// Retries allowed after `timestamp_skew`: a fresh timestamp may fix a race, a wrong
/// clock will not (PROTOCOL.md: "a small budget").
pub const TIMESTAMP_SKEW_RETRIES: u32 = 2;
/// Retries allowed after an attestation refusal: re-mint once, then stop (PROTOCOL.md).
pub const ATTESTATION_RETRIES: u32 = 1;

/// What to do after an attempt ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Transient: back off and try again.
    Reconnect,
    /// Try again at most `max_retries` times in a row, then stop.
    Limited(Limit),
    /// Permanent: stop and report.
    Stop,
}

/// A limited-retry rule's budget and spacing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    /// Retries allowed before the rule stops the machine.
    pub max_retries: u32,
    /// How the retries are spaced.
    pub delay: LimitDelay,
}

/// Spacing of a limited rule's retries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitDelay {
    /// The ordinary backoff schedule.
    Backoff,
    /// `step × n` for the n-th retry (the seeds' 4001 handling).
    Linear(Duration),
}

/// What a rule matches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Match {
    /// Any close with this code.
    Close(u16),
    /// A close with this code and exactly this reason (or JSON reason `code`).
    CloseReason(u16, String),
    /// A rejection `error` frame with this code, or a 1008 close whose reason is it.
    Rejection(String),
    /// A socket that could not be opened, by the kind the host reported.
    Connect(ConnectFailureKind),
}

/// One row of the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// What the rule matches.
    pub on: Match,
    /// What to do when it matches.
    pub verdict: Verdict,
}

/// The outcome of classifying a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Classification {
    /// Index of the rule that matched, if any (limited rules count per index).
    pub rule: Option<usize>,
    /// What to do.
    pub verdict: Verdict,
    /// The broker's requested least delay, from the error frame or a JSON close reason.
    pub retry_after: Option<Duration>,
}

/// The close/rejection table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClosePolicy {
    /// Shared: every connection of a process usually runs the same table.
    rules: Arc<Vec<Rule>>,
    /// Verdict for a close or rejection no rule matches.
    pub unmatched: Verdict,
}

impl ClosePolicy {
    /// A table of explicit rules; earlier rules win.
    pub fn new(rules: Vec<Rule>, unmatched: Verdict) -> Self {
        ClosePolicy {
            rules: Arc::new(rules),
            unmatched,
        }
    }

    /// An empty table: every close reconnects (the seeds' ws-lifecycle behaviour).
    pub fn always_reconnect() -> Self {
        ClosePolicy::new(Vec::new(), Verdict::Reconnect)
    }

    /// The rules, in match order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Adds a rule in front of the others, so it overrides them.
    pub fn prepend(&mut self, rule: Rule) {
        Arc::make_mut(&mut self.rules).insert(0, rule);
    }

    /// Classifies how an attempt ended.
    ///
    /// A rejection frame decides over the close that follows it (D6); a close is
    /// matched by (code, reason), then — for 1008, which brokers use with the
    /// rejection code as reason — by the rejection rules, then by code alone.
    /// A socket that could not open is matched by its kind (by default only
    /// configuration and certificate errors stop); other local failures
    /// (timeouts, stale) are always transient.
    pub fn classify(&self, failure: &Failure) -> Classification {
        match failure {
            Failure::Rejected { rejection, close } => {
                if let Some(i) = self.find_rejection(&rejection.code) {
                    let close_hint = close.as_ref().and_then(|c| parse_reason(&c.reason).1);
                    return Classification {
                        rule: Some(i),
                        verdict: self.rules[i].verdict,
                        retry_after: rejection.retry_after.or(close_hint),
                    };
                }
                match close {
                    Some(c) => {
                        let mut class = self.classify_close(c);
                        class.retry_after = rejection.retry_after.or(class.retry_after);
                        class
                    }
                    None => Classification {
                        rule: None,
                        verdict: self.unmatched,
                        retry_after: rejection.retry_after,
                    },
                }
            }
            Failure::Closed(c) | Failure::TooLarge(c) => self.classify_close(c),
            Failure::ConnectFailed { kind, .. } => {
                let rule = self
                    .rules
                    .iter()
                    .position(|r| matches!(r.on, Match::Connect(k) if k == *kind));
                Classification {
                    rule,
                    // A kind no rule names is a network condition: transient.
                    verdict: rule.map_or(Verdict::Reconnect, |i| self.rules[i].verdict),
                    retry_after: None,
                }
            }
            Failure::OpenTimeout
            | Failure::HelloBuild { .. }
            | Failure::HelloAckTimeout
            | Failure::Stale { .. }
            | Failure::Forced => Classification {
                rule: None,
                verdict: Verdict::Reconnect,
                retry_after: None,
            },
        }
    }

    fn classify_close(&self, close: &PeerClose) -> Classification {
        let (reason_code, retry_after) = parse_reason(&close.reason);
        let exact = self.rules.iter().position(|r| {
            matches!(&r.on, Match::CloseReason(code, reason) if *code == close.code && *reason == reason_code)
        });
        let by_rejection = || {
            (close.code == 1008)
                .then(|| self.find_rejection(&reason_code))
                .flatten()
        };
        let by_code = || {
            self.rules
                .iter()
                .position(|r| matches!(r.on, Match::Close(code) if code == close.code))
        };
        let rule = exact.or_else(by_rejection).or_else(by_code);
        Classification {
            rule,
            verdict: rule.map_or(self.unmatched, |i| self.rules[i].verdict),
            retry_after,
        }
    }

    fn find_rejection(&self, code: &str) -> Option<usize> {
        self.rules
            .iter()
            .position(|r| matches!(&r.on, Match::Rejection(c) if c == code))
    }
}

impl Default for ClosePolicy {
    /// PROTOCOL.md's table and the hosted-session codes of sessions-websocket.ts.
    ///
    /// Built once per process and shared: every connection of a process made
    /// from default settings points at the same table instead of holding 1.4 KB
    /// of its own (memory per idle connection, issue 12). It is immutable and
    /// the same in every process, so sharing it decides nothing.
    fn default() -> Self {
        static DEFAULT: OnceLock<ClosePolicy> = OnceLock::new();
        DEFAULT.get_or_init(default_table).clone()
    }
}

impl ClosePolicy {
    /// The hosted-session endpoint's table (sessions-websocket.ts): the mesh
    /// table, but 4001 is "session not found", which a moment can fix, so it is
    /// retried three times at 2 s × n (S3) instead of stopping. Shared like
    /// [`ClosePolicy::default`].
    pub fn hosted() -> Self {
        static HOSTED: OnceLock<ClosePolicy> = OnceLock::new();
        HOSTED
            .get_or_init(|| {
                let mut table = default_table();
                table.prepend(Rule {
                    on: Match::Close(4001),
                    verdict: Verdict::Limited(Limit {
                        max_retries: SESSION_NOT_FOUND_RETRIES,
                        delay: LimitDelay::Linear(SESSION_NOT_FOUND_STEP),
                    }),
                });
                table
            })
            .clone()
    }
}

/// The table behind [`ClosePolicy::default`].
fn default_table() -> ClosePolicy {
    use Verdict::{Limited, Reconnect, Stop};
    let rejection = |code: &str, verdict| Rule {
        on: Match::Rejection(code.into()),
        verdict,
    };
    let close = |code, verdict| Rule {
        on: Match::Close(code),
        verdict,
    };
    let backoff_limit = |max_retries| {
        Limited(Limit {
            max_retries,
            delay: LimitDelay::Backoff,
        })
    };
    ClosePolicy::new(
        vec![
            rejection("timestamp_skew", backoff_limit(TIMESTAMP_SKEW_RETRIES)),
            rejection("bad_signature", Stop),
            rejection("malformed", Stop),
            rejection("unauthorized", Stop),
            rejection("revoked", Stop),
            rejection("banned", Stop),
            rejection("capacity", Reconnect),
            rejection("bad_session_pubkey", backoff_limit(ATTESTATION_RETRIES)),
            rejection("bad_parent_pubkey", backoff_limit(ATTESTATION_RETRIES)),
            rejection("attestation_mismatch", backoff_limit(ATTESTATION_RETRIES)),
            rejection("expired", backoff_limit(ATTESTATION_RETRIES)),
            // The real broker's other session_hello refusals (apps/broker's
            // crypto.ts and handleSessionHello), missing from PROTOCOL.md's
            // table: unmatched they fell to the 1008 default and reconnected
            // for ever with the same key material.
            rejection("ttl_too_long", backoff_limit(ATTESTATION_RETRIES)),
            rejection("parent_member_id_mismatch", backoff_limit(ATTESTATION_RETRIES)),
            rejection("unknown_message_type", Stop),
            rejection("no_hello", Stop),
            rejection("session_replaced", Stop),
            Rule {
                on: Match::CloseReason(1000, "session_replaced".into()),
                verdict: Stop,
            },
            close(1001, Reconnect),
            close(1006, Reconnect),
            close(4002, Stop),
            close(4003, Stop),
            // The real broker's `kick` (apps/broker index.ts: "hard — WS closes
            // with 4001, CLI exits (no reconnect)"); the product's CLI stops on it.
            // The kick revokes nothing, so a retry would simply undo it.
            close(4001, Stop),
            // The same URL or certificate fails the same way next time: stop
            // and say so instead of retrying a typo for ever.
            Rule {
                on: Match::Connect(ConnectFailureKind::Configuration),
                verdict: Stop,
            },
            Rule {
                on: Match::Connect(ConnectFailureKind::TlsCertificate),
                verdict: Stop,
            },
            // The proxy wants credentials it was not given, or refuses the
            // ones it was: every retry sends the same again.
            Rule {
                on: Match::Connect(ConnectFailureKind::Proxy(407)),
                verdict: Stop,
            },
        ],
        Reconnect,
    )
}

/// Splits a close reason into its code text and an optional `retryAfterMs` (X10).
///
/// A reason that is a JSON object contributes its `code` (or `reason`) string and
/// its `retryAfterMs`; any other reason is its own code.
pub fn parse_reason(reason: &str) -> (String, Option<Duration>) {
    if reason.trim_start().starts_with('{') {
        if let Ok(serde_json::Value::Object(map)) = serde_json::from_str(reason) {
            let code = map
                .get("code")
                .or_else(|| map.get("reason"))
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_owned();
            let retry = map
                .get("retryAfterMs")
                .and_then(|v| v.as_u64())
                .map(Duration::from_millis);
            return (code, retry);
        }
    }
    (reason.to_owned(), None)
}

/// Whether a close code may be put in a close frame.
///
/// 1005, 1006 and 1015 only describe what happened locally and must never be sent;
/// 1004 and the unassigned ranges are invalid (RFC 6455 §7.4).
pub fn is_sendable_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::Rejection;

    fn closed(code: u16, reason: &str) -> Failure {
        Failure::Closed(PeerClose {
            code,
            reason: reason.into(),
        })
    }

    fn rejected(code: &str, close: Option<(u16, &str)>) -> Failure {
        Failure::Rejected {
            rejection: Rejection {
                code: code.into(),
                message: "m".into(),
                retry_after: None,
            },
            close: close.map(|(code, r)| PeerClose {
                code,
                reason: r.into(),
            }),
        }
    }

    #[test]
    fn permanent_rejections_stop() {
        // proves D3
        let p = ClosePolicy::default();
        for code in ["bad_signature", "malformed", "unauthorized", "revoked"] {
            assert_eq!(
                p.classify(&rejected(code, Some((1008, code)))).verdict,
                Verdict::Stop,
                "{code}"
            );
            assert_eq!(p.classify(&closed(1008, code)).verdict, Verdict::Stop, "{code}");
        }
        assert_eq!(p.classify(&closed(4002, "banned")).verdict, Verdict::Stop);
        assert_eq!(p.classify(&closed(4003, "")).verdict, Verdict::Stop);
    }

    #[test]
    fn every_session_hello_refusal_of_the_real_broker_is_limited() {
        // proves D3, B12: re-mint once, then stop, for each attestation refusal
        // the real broker writes (error code, then close 1008 with the same reason).
        let p = ClosePolicy::default();
        let limited = Verdict::Limited(Limit {
            max_retries: ATTESTATION_RETRIES,
            delay: LimitDelay::Backoff,
        });
        for code in [
            "bad_session_pubkey",
            "bad_parent_pubkey",
            "attestation_mismatch",
            "expired",
            "ttl_too_long",
            "parent_member_id_mismatch",
        ] {
            assert_eq!(
                p.classify(&rejected(code, Some((1008, code)))).verdict,
                limited,
                "{code}"
            );
            assert_eq!(p.classify(&closed(1008, code)).verdict, limited, "{code}");
        }
    }

    #[test]
    fn session_replaced_stops() {
        // proves D4
        let p = ClosePolicy::default();
        assert_eq!(
            p.classify(&closed(1000, "session_replaced")).verdict,
            Verdict::Stop
        );
        assert_eq!(p.classify(&closed(1000, "bye")).verdict, Verdict::Reconnect);
    }

    #[test]
    fn transient_closes_reconnect() {
        let p = ClosePolicy::default();
        for (code, reason) in [
            (1001, "shutting down"),
            (1006, ""),
            (1008, "capacity"),
            (1011, ""),
        ] {
            assert_eq!(
                p.classify(&closed(code, reason)).verdict,
                Verdict::Reconnect,
                "{code}"
            );
        }
        assert_eq!(p.classify(&Failure::HelloAckTimeout).verdict, Verdict::Reconnect);
    }

    #[test]
    fn session_not_found_is_limited_linear() {
        // proves S3
        let p = ClosePolicy::hosted();
        assert_eq!(
            p.classify(&closed(4001, "session not found")).verdict,
            Verdict::Limited(Limit {
                max_retries: 3,
                delay: LimitDelay::Linear(Duration::from_secs(2))
            })
        );
    }

    #[test]
    fn a_mesh_broker_kick_stops_and_the_hosted_table_differs_only_there() {
        // 4001 on the mesh broker is `kicked`: the product's CLI exits on it.
        let mesh = ClosePolicy::default();
        assert_eq!(mesh.classify(&closed(4001, "kicked")).verdict, Verdict::Stop);
        assert_eq!(
            mesh.classify(&closed(4001, "kicked_stale")).verdict,
            Verdict::Stop
        );
        let hosted = ClosePolicy::hosted();
        assert_eq!(&hosted.rules()[1..], mesh.rules());
        assert_eq!(hosted.unmatched, mesh.unmatched);
    }

    #[test]
    fn json_close_reason_carries_retry_after() {
        // proves X10
        let p = ClosePolicy::default();
        let c = p.classify(&closed(1008, r#"{"code":"capacity","retryAfterMs":2500}"#));
        assert_eq!(c.verdict, Verdict::Reconnect);
        assert_eq!(c.retry_after, Some(Duration::from_millis(2500)));
    }

    #[test]
    fn rejection_code_decides_over_close_code() {
        // proves D6
        let p = ClosePolicy::default();
        assert_eq!(
            p.classify(&rejected("capacity", Some((1008, "capacity"))))
                .verdict,
            Verdict::Reconnect
        );
        assert_eq!(
            p.classify(&rejected("revoked", Some((4002, "banned")))).verdict,
            Verdict::Stop
        );
        // An unknown rejection code falls back to the close code's rule.
        assert_eq!(
            p.classify(&rejected("weird", Some((4002, "banned")))).verdict,
            Verdict::Stop
        );
    }

    #[test]
    fn local_only_codes_are_never_sendable() {
        for code in [1004, 1005, 1006, 1015, 0, 999, 2000, 5000] {
            assert!(!is_sendable_close_code(code), "{code}");
        }
        for code in [1000, 1001, 1008, 1011, 4001] {
            assert!(is_sendable_close_code(code), "{code}");
        }
    }
}
