//! Which broker error codes make a failed send or request permanent (B5, B16).
//!
//! Policy is data, like the close table: an ordered list of code fragments,
//! each saying permanent or transient, matched against the broker's **code**
//! only — never against its message, where a transient `rate_limit` may well
//! mention "unauthorized bursts". [`ErrorPolicy::default`] is PROTOCOL.md's list.

use std::sync::{Arc, OnceLock};

/// PROTOCOL.md's fragments of permanent error codes ("classify a failure as
/// permanent when its code matches …"); everything else is transient
/// (`rate_limit`, `no connected peer`: the peer may come back).
pub const PERMANENT_ERROR_CODES: [&str; 11] = [
    "payload_too_large",
    "payload too large",
    "forbidden",
    "not_found",
    "target_not_found",
    "invalid",
    "schema",
    "auth",
    "signature",
    "unknown",
    "not_authorized",
];

/// One row: codes containing `fragment` (ASCII case-insensitive) are
/// `permanent` or not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorRule {
    /// A piece of the code, e.g. `rate_limit` or `not_found`.
    pub fragment: String,
    /// What a match means.
    pub permanent: bool,
}

/// The error-code table; earlier rules win, and a code no rule matches is transient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorPolicy {
    rules: Arc<Vec<ErrorRule>>,
}

impl ErrorPolicy {
    /// A table of explicit rules.
    pub fn new(rules: Vec<ErrorRule>) -> Self {
        ErrorPolicy {
            rules: Arc::new(rules),
        }
    }

    /// Adds a rule in front of the others, so it overrides them.
    pub fn prepend(&mut self, rule: ErrorRule) {
        Arc::make_mut(&mut self.rules).insert(0, rule);
    }

    /// The rules, in match order.
    pub fn rules(&self) -> &[ErrorRule] {
        &self.rules
    }

    /// Whether a failure with this broker code cannot be fixed by retrying.
    pub fn is_permanent(&self, code: &str) -> bool {
        self.rules
            .iter()
            .find(|r| contains_ignore_ascii_case(code, &r.fragment))
            .is_some_and(|r| r.permanent)
    }
}

impl Default for ErrorPolicy {
    /// PROTOCOL.md's list, built once per process and shared by every
    /// connection made from default settings (like the close table).
    fn default() -> Self {
        static DEFAULT: OnceLock<ErrorPolicy> = OnceLock::new();
        DEFAULT.get_or_init(default_table).clone()
    }
}

/// The table behind [`ErrorPolicy::default`].
fn default_table() -> ErrorPolicy {
    ErrorPolicy::new(
        PERMANENT_ERROR_CODES
            .iter()
            .map(|f| ErrorRule {
                fragment: (*f).to_owned(),
                permanent: true,
            })
            .collect(),
    )
}

/// Splits an ack's `error` text into the broker's code and its message.
///
/// The real broker writes a failed send as one text (`rate_limit: max 60 msg/min
/// …`, `payload too large: 70000 bytes > …`, `no connected peer for target (not
/// online, …)`): the code is what comes before the first `:`, or else before
/// the first ` (`; the message is the rest, or the whole text when there is no
/// separator, so nothing the broker said is lost.
pub fn split_ack_error(text: &str) -> (&str, &str) {
    let text = text.trim();
    if let Some((code, message)) = text.split_once(':') {
        return (code.trim(), message.trim());
    }
    if let Some((code, _)) = text.split_once(" (") {
        return (code.trim(), text);
    }
    (text, "")
}

fn contains_ignore_ascii_case(haystack: &str, needle: &str) -> bool {
    needle.is_empty()
        || haystack
            .as_bytes()
            .windows(needle.len())
            .any(|window| window.eq_ignore_ascii_case(needle.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permanence_comes_from_the_code_never_the_message() {
        // proves B16, B5
        let p = ErrorPolicy::default();
        for code in [
            "payload too large",
            "forbidden",
            "not_found",
            "topic_not_found",
            "invalid_args",
            "unauthorized",
            "bad_signature",
            "unknown_message_type",
        ] {
            assert!(p.is_permanent(code), "{code}");
        }
        for code in ["rate_limit", "no connected peer for target", "capacity", ""] {
            assert!(!p.is_permanent(code), "{code}");
        }
        // The broker's real rate-limit ack: its message mentions nothing of the
        // list, but had it said "unknown burst" the old whole-text search
        // would have called a transient code permanent.
        let (code, message) = split_ack_error("rate_limit: unknown burst of unauthorized sends");
        assert_eq!(
            (code, message),
            ("rate_limit", "unknown burst of unauthorized sends")
        );
        assert!(!p.is_permanent(code));
    }

    #[test]
    fn the_real_brokers_ack_errors_split_into_code_and_message() {
        // proves B16: the texts of apps/broker/src/index.ts at 213a6b3.
        assert_eq!(
            split_ack_error("rate_limit: max 60 msg/min (burst 10) — slow down"),
            ("rate_limit", "max 60 msg/min (burst 10) — slow down")
        );
        assert_eq!(
            split_ack_error("payload too large: 70000 bytes > MAX_MESSAGE_BYTES=65536"),
            ("payload too large", "70000 bytes > MAX_MESSAGE_BYTES=65536")
        );
        let offline = "no connected peer for target (not online, or targetSpec is your own key without another session)";
        assert_eq!(
            split_ack_error(offline),
            ("no connected peer for target", offline)
        );
        assert_eq!(split_ack_error("forbidden"), ("forbidden", ""));
        let p = ErrorPolicy::default();
        assert!(
            !p.is_permanent(split_ack_error(offline).0),
            "the peer may come back"
        );
        assert!(p.is_permanent(split_ack_error("payload too large: 1 > 0").0));
    }

    #[test]
    fn a_rule_can_override_the_table() {
        let mut p = ErrorPolicy::default();
        p.prepend(ErrorRule {
            fragment: "topic_not_found".into(),
            permanent: false,
        });
        assert!(!p.is_permanent("topic_not_found"));
        assert!(p.is_permanent("not_found"));
    }
}
