// Drives the real product's own clients, unmodified, for
// tests/tests/product_interop.rs. esbuild bundles this file together with
// `BrokerClient` (apps/cli/src/services/broker/ws-client.ts), `DaemonBrokerClient`
// (apps/cli/src/daemon/broker.ts), the daemon's per-session `SessionBrokerClient`
// (apps/cli/src/daemon/session-broker.ts), the daemon's inbound path
// (apps/cli/src/daemon/inbound.ts) and the product's crypto (box.ts) from
// tests/node/product/claudemesh-213a6b3 (a copy of revision 213a6b3 from
// ../shared/reference, MIT); nothing of theirs is edited.
//
// The test talks to it in JSON lines: on stdin `{"id", "op", ...}`, on stdout
// `{"id", "ok"}` or `{"id", "err"}` per request, and events
// `{"event": "push" | "inbox" | "state_change" | "status", "client", ...}` as
// they happen.
//
// The only shims are what the daemon's inbound path needs around it: an
// in-memory stand-in for its SQLite inbox (two statements) and its event bus.

import { createInterface } from "node:readline";
import { randomBytes, randomUUID } from "node:crypto";

import { BrokerClient } from "~/services/broker/ws-client.js";
import { DaemonBrokerClient } from "~/daemon/broker.js";
import { SessionBrokerClient } from "~/daemon/session-broker.js";
import { signParentAttestation } from "~/services/broker/session-hello-sig.js";
import { generateKeypair } from "~/services/crypto/keypair.js";
import { handleBrokerPush } from "~/daemon/inbound.js";
import { encryptDirect, isDirectTarget } from "~/services/crypto/box.js";

type Mesh = {
  meshId: string;
  memberId: string;
  slug: string;
  name: string;
  pubkey: string;
  secretKey: string;
  brokerUrl: string;
  joinedAt: string;
};

type Client =
  | { kind: "broker"; c: BrokerClient; mesh: Mesh }
  | { kind: "daemon"; c: DaemonBrokerClient; mesh: Mesh }
  | { kind: "session"; c: SessionBrokerClient; mesh: Mesh; sessionSecretKey: string };

const clients = new Map<string, Client>();

function emit(line: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify(line) + "\n");
}

// The daemon's own inbound path for a push that reached one of its sockets:
// decrypt (session secret, then member secret), dedupe into the inbox,
// client_ack back to the broker, publish on the bus.
function inbound(
  name: string,
  mesh: Mesh,
  inbox: Map<string, unknown>,
  ack: (cmid: string, bmid: string | null) => void,
  session?: { pubkey: string; secretKey: string },
) {
  return (msg: Record<string, unknown>) =>
    void handleBrokerPush(msg, {
      db: inboxShim(inbox) as any,
      bus: {
        // With the frame as it came off the wire, so a test can see it was sealed.
        publish: (kind: string, payload: unknown) => emit({ event: "inbox", client: name, kind, payload, wire: msg }),
      } as any,
      meshSlug: mesh.slug,
      recipientSecretKeyHex: mesh.secretKey,
      sessionSecretKeyHex: session?.secretKey,
      recipientPubkey: session?.pubkey ?? mesh.pubkey,
      recipientKind: session ? "session" : "member",
      ackClientMessage: ack,
    }).catch((e) => emit({ event: "error", client: name, error: String(e) }));
}

// The daemon's inbox.db, as far as `insertIfNew` uses it: a lookup by
// client_message_id and an insert.
function inboxShim(rows: Map<string, unknown>) {
  return {
    prepare(sql: string) {
      return {
        get(clientMessageId: string) {
          return rows.get(clientMessageId);
        },
        run(...args: unknown[]) {
          if (!/INSERT INTO inbox/.test(sql)) throw new Error(`unexpected statement: ${sql}`);
          const [id, clientMessageId] = args as [string, string];
          if (!rows.has(clientMessageId)) rows.set(clientMessageId, { id });
        },
      };
    },
  };
}

function client(name: string): Client {
  const c = clients.get(name);
  if (!c) throw new Error(`no client named ${name}`);
  return c;
}

async function handle(req: Record<string, any>): Promise<unknown> {
  switch (req.op) {
    case "new_broker_client": {
      const mesh = req.mesh as Mesh;
      const c = new BrokerClient(mesh, {
        displayName: req.displayName,
        quiet: true,
        onStatusChange: (status) => emit({ event: "status", client: req.name, status }),
      });
      c.onPush((push) => emit({ event: "push", client: req.name, push }));
      c.onStateChange((change) => emit({ event: "state_change", client: req.name, change }));
      clients.set(req.name, { kind: "broker", c, mesh });
      return null;
    }
    case "new_daemon_client": {
      const mesh = req.mesh as Mesh;
      const inbox = new Map<string, unknown>();
      const name = req.name as string;
      const c: DaemonBrokerClient = new DaemonBrokerClient(mesh, {
        displayName: req.displayName,
        onStatusChange: (status) => emit({ event: "status", client: name, status }),
        onPush: inbound(name, mesh, inbox, (cmid, bmid) => c.sendClientAck(cmid, bmid)),
        log: () => {},
      });
      clients.set(name, { kind: "daemon", c, mesh });
      return null;
    }
    case "new_session_client": {
      // As the daemon sets one up for a launched session: a fresh session key
      // pair, an attestation by the member key (re-minted by the client on
      // every attempt), session_hello.
      const mesh = req.mesh as Mesh;
      const name = req.name as string;
      const inbox = new Map<string, unknown>();
      const kp = await generateKeypair();
      const parentAttestation = await signParentAttestation({
        parentMemberPubkey: mesh.pubkey,
        parentSecretKey: mesh.secretKey,
        sessionPubkey: kp.publicKey,
      });
      const session = { pubkey: kp.publicKey, secretKey: kp.secretKey };
      const c: SessionBrokerClient = new SessionBrokerClient({
        mesh,
        sessionPubkey: kp.publicKey,
        sessionSecretKey: kp.secretKey,
        parentAttestation,
        sessionId: req.sessionId,
        displayName: req.displayName,
        pid: process.pid,
        onStatusChange: (status) => emit({ event: "status", client: name, status }),
        onPush: inbound(name, mesh, inbox, (cmid, bmid) => c.sendClientAck(cmid, bmid), session),
        log: () => {},
      });
      clients.set(name, { kind: "session", c, mesh, sessionSecretKey: kp.secretKey });
      return kp.publicKey;
    }
    case "connect":
      await client(req.name).c.connect();
      return null;
    case "session_pubkey": {
      const c = client(req.name);
      if (c.kind === "broker") return c.c.getSessionPubkey();
      return c.kind === "session" ? c.c.sessionPubkey : null;
    }
    case "send": {
      const c = client(req.name);
      if (c.kind === "broker") return await c.c.send(req.target, req.text, req.priority ?? "next");
      // The daemon's outbox rows arrive sealed (the product's box.ts, with the
      // session secret for a session's rows and the member secret otherwise, for
      // direct targets; base64 otherwise); its clients send them as they are.
      let nonce: string;
      let ciphertext: string;
      if (isDirectTarget(req.target)) {
        const secret = c.kind === "session" ? c.sessionSecretKey : c.mesh.secretKey;
        ({ nonce, ciphertext } = await encryptDirect(req.text, req.target, secret));
      } else {
        nonce = randomBytes(24).toString("base64");
        ciphertext = Buffer.from(req.text, "utf-8").toString("base64");
      }
      return await c.c.send({
        targetSpec: req.target,
        priority: req.priority ?? "next",
        nonce,
        ciphertext,
        client_message_id: randomUUID(),
        request_fingerprint_hex: "00",
      });
    }
    // The daemon's requests take a timeout (ms) after their arguments; the CLI
    // client's ignore it.
    case "list_peers":
      return await client(req.name).c.listPeers();
    case "set_state":
      await client(req.name).c.setState(req.key, req.value);
      return null;
    case "get_state":
      return await client(req.name).c.getState(req.key, req.timeoutMs);
    case "list_state":
      return await client(req.name).c.listState();
    case "remember":
      return await client(req.name).c.remember(req.content, req.tags, req.timeoutMs);
    case "recall":
      return await client(req.name).c.recall(req.query, req.timeoutMs);
    case "forget":
      await client(req.name).c.forget(req.memoryId);
      return null;
    case "terminal": {
      const c = client(req.name);
      return {
        status: c.c.status,
        terminalClose: c.kind === "broker" ? c.c.terminalClose : null,
      };
    }
    case "close":
      await client(req.name).c.close();
      return null;
    default:
      throw new Error(`unknown op ${req.op}`);
  }
}

const lines = createInterface({ input: process.stdin });
lines.on("line", (line) => {
  if (!line.trim()) return;
  const req = JSON.parse(line);
  handle(req).then(
    (ok) => emit({ id: req.id, ok: ok ?? null }),
    (e) => emit({ id: req.id, err: e instanceof Error ? e.message : String(e) }),
  );
});
// The product's clients keep reconnect timers; the test ends them by closing stdin.
lines.on("close", () => process.exit(0));
emit({ event: "ready" });
