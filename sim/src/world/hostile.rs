//! Hostile members: roster members the simulation does not drive, attacking the
//! broker core directly (X15). Their connections are not on the simulated network:
//! what the broker sends them is checked, then dropped, like a peer that never reads.

use serde_json::json;
use tether_broker::ConnId;
use tether_proto::mesh::identity::{MemberIdentity, Presence, SecretKey};
use tether_proto::mesh::wire::{
    decode_broker_frame, BrokerFrame, ClientFrame, GroupRef, HelloExtras, ListPeersFrame, ListStateFrame,
    RecallFrame, RememberFrame, SendFrame, SetStateFrame, SetSummaryFrame,
};

use super::super::check::Violation;
use super::super::scenario::Attack;
use super::{World, MESH};

/// Hostile connection ids start here, far from the honest ones.
const HOSTILE_CONN_BASE: u64 = 1 << 40;

/// The identity of hostile member `n`.
pub(super) fn hostile_identity(n: u8) -> MemberIdentity {
    MemberIdentity {
        mesh_id: MESH.into(),
        member_id: format!("mallory-{n}"),
        secret: SecretKey::from_seed([200 + n; 32]),
    }
}

fn presence(session: String, name: Option<String>) -> Presence {
    Presence {
        session_id: session,
        pid: 666,
        cwd: "/evil".into(),
        extras: HelloExtras {
            display_name: name,
            ..HelloExtras::default()
        }
        .into(),
    }
}

impl World {
    /// Carries out one attack, then checks what it must not have achieved.
    pub(super) fn hostile(&mut self, attacker: u8, attack: Attack, victim: usize) -> Result<(), Violation> {
        let me = hostile_identity(attacker);
        self.hostile_acting = true;
        let result = self.attack(&me, attacker, attack, victim);
        self.hostile_acting = false;
        result
    }

    fn attack(
        &mut self,
        me: &MemberIdentity,
        attacker: u8,
        attack: Attack,
        victim: usize,
    ) -> Result<(), Violation> {
        let victim_key = self.keys[victim].clone();
        match attack {
            Attack::OversizedHello => {
                let conn = self.hostile_open();
                let hello = me.hello(
                    &presence(self.hostile_session(), Some("x".repeat(1_000))),
                    self.at().unix_ms,
                );
                self.hostile_frame(conn, hello);
            }
            Attack::StealSession => {
                let conn = self.hostile_open();
                let hello = me.hello(&presence(format!("sim-{victim}"), None), self.at().unix_ms);
                self.hostile_frame(conn, hello);
            }
            Attack::ClaimKey => {
                let conn = self.hostile_open();
                let mut hello = me.hello(&presence(self.hostile_session(), None), self.at().unix_ms);
                hello.session_pubkey = Some(victim_key);
                self.hostile_frame(conn, hello);
            }
            Attack::NameSquat => {
                let conn = self.hostile_open();
                let mut p = presence(self.hostile_session(), Some(format!("peer-{victim}")));
                p.extras.groups = Some(vec![GroupRef {
                    name: "ops".into(),
                    role: Some("admin".into()),
                }]);
                let hello = me.hello(&p, self.at().unix_ms);
                self.hostile_frame(conn, hello);
            }
            Attack::Bloat => {
                let conn = self.hostile_join(me);
                self.hostile_frame(
                    conn,
                    SetStateFrame {
                        key: "bloat".into(),
                        value: json!("v".repeat(4 * 1024)),
                    },
                );
                self.hostile_frame(
                    conn,
                    RememberFrame {
                        content: "m".repeat(4 * 1024),
                        tags: None,
                        req_id: Some("r".into()),
                    },
                );
                self.hostile_frame(
                    conn,
                    SetSummaryFrame {
                        summary: "s".repeat(2_000),
                    },
                );
                for i in 0..12 {
                    self.hostile_frame(
                        conn,
                        SetStateFrame {
                            key: format!("k{attacker}-{i}"),
                            value: json!("w".repeat(1_500)),
                        },
                    );
                    self.hostile_frame(
                        conn,
                        RememberFrame {
                            content: format!("{i} {}", "n".repeat(1_500)),
                            tags: Some(vec!["t".into()]),
                            req_id: None,
                        },
                    );
                }
                self.hostile_frame(conn, ListStateFrame { req_id: None });
                self.hostile_frame(
                    conn,
                    RecallFrame {
                        query: String::new(),
                        req_id: None,
                    },
                );
                self.hostile_frame(conn, ListPeersFrame { req_id: None });
            }
            Attack::Flood => {
                let conn = self.hostile_join(me);
                let body = "A".repeat(6 * 1024);
                for i in 0..10 {
                    let id = format!("flood-{attacker}-{}-{i}", self.hostile_next);
                    self.hostile_frame(
                        conn,
                        SendFrame {
                            id: id.clone(),
                            target_spec: victim_key.clone(),
                            priority: Default::default(),
                            nonce: "bm9uY2U=".into(),
                            ciphertext: body.clone(),
                            client_message_id: Some(id),
                            request_fingerprint: None,
                            mentions: None,
                            reply_to_id: None,
                            body_version: None,
                        },
                    );
                }
            }
            Attack::PreHelloFlood => {
                for _ in 0..20 {
                    self.hostile_open();
                }
            }
            Attack::DuplicateType => {
                let conn = self.hostile_open();
                let hello =
                    ClientFrame::from(me.hello(&presence(self.hostile_session(), None), self.at().unix_ms));
                let text = hello.encode();
                let twice = format!(r#"{{"type":"list_peers",{}"#, text.trim_start_matches('{'));
                let now = self.at();
                self.broker.handle_frame(conn, &twice, now);
                self.pump_broker()?;
            }
            Attack::ManyConnections => {
                for _ in 0..12 {
                    self.hostile_join(me);
                }
            }
        }
        self.pump_broker()
    }

    fn hostile_session(&mut self) -> String {
        self.hostile_next += 1;
        format!("evil-{}", self.hostile_next)
    }

    fn hostile_open(&mut self) -> ConnId {
        self.hostile_next += 1;
        let conn = ConnId(HOSTILE_CONN_BASE + self.hostile_next);
        self.hostile_conns.insert(conn);
        let now = self.at();
        self.broker.handle_open(conn, now);
        conn
    }

    fn hostile_join(&mut self, me: &MemberIdentity) -> ConnId {
        let conn = self.hostile_open();
        let session = self.hostile_session();
        let hello = me.hello(&presence(session, Some(me.member_id.clone())), self.at().unix_ms);
        self.hostile_frame(conn, hello);
        conn
    }

    fn hostile_frame(&mut self, conn: ConnId, frame: impl Into<ClientFrame>) {
        let now = self.at();
        self.broker.handle_frame(conn, &frame.into().encode(), now);
        // Drained at once so the outputs are checked in order.
        let _ = self.pump_broker();
    }

    /// Checks one broker output for a hostile connection.
    pub(super) fn check_hostile_output(
        &mut self,
        conn: ConnId,
        text: Option<&str>,
        last: bool,
    ) -> Result<(), Violation> {
        if last {
            self.hostile_conns.remove(&conn);
        }
        let Some(text) = text else {
            return Ok(());
        };
        if let Ok(BrokerFrame::Push(push)) = decode_broker_frame(text, usize::MAX) {
            let honest = push
                .sender_member_pubkey
                .as_ref()
                .is_some_and(|k| self.keys.contains(k));
            if honest {
                return Err(Violation(format!(
                    "hostile {conn} received an honest client's direct message {}",
                    push.message_id
                )));
            }
        }
        Ok(())
    }

    /// Every hostile connection goes away (the heal step, a broker restart).
    pub(super) fn drop_hostiles(&mut self) -> Result<(), Violation> {
        let now = self.at();
        for conn in std::mem::take(&mut self.hostile_conns) {
            self.broker.handle_closed(conn, now);
        }
        self.pump_broker()
    }
}
