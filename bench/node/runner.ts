// The seeds' client on Node: `connectWsWithBackoff` (seeds/ws-lifecycle.ts, loaded
// unchanged from gen/ by prepare-seed.mjs) with the daemon client's hello and send
// bookkeeping (seeds/daemon-broker-client.ts: `buildHello`, `send`, the `ack`
// branch of `handleMessage`), driven by tether's loopback bench over stdin:
//
//   node --import tsx runner.ts URL CONNS      connects CONNS clients, prints "ready"
//   stdin  "round CONNS IN_FLIGHT PER_CONN"    → one JSON line of results
//   stdin  "cpu IN_FLIGHT SENDS"                → one JSON line: this process's CPU
//                                               (process.cpuUsage: getrusage) and
//                                               wall time over SENDS sends on client 1
//   stdin  "interop"                            → one JSON line: hello, acks, pushes
//   stdin  "quit"
import { createPrivateKey, createPublicKey, sign, randomBytes } from "node:crypto";
import { createInterface } from "node:readline";
import { connectWsWithBackoff, type WsLifecycle } from "./gen/ws-lifecycle.ts";

const SEND_ACK_TIMEOUT_MS = 15_000; // the daemon client's SEND_ACK_TIMEOUT_MS
const BODY_B64 = Buffer.from("hello from the loopback bench").toString("base64");

type SendResult = { ok: true; messageId: string } | { ok: false; error: string };

/** A member key the way the daemon holds one: a 32-byte ed25519 seed. */
function memberKey(n: number) {
  const seed = Buffer.alloc(32);
  seed.writeUInt32LE(n, 0);
  seed[31] = 0x6e;
  // PKCS#8 wrapping of a raw ed25519 seed.
  const der = Buffer.concat([Buffer.from("302e020100300506032b657004220420", "hex"), seed]);
  const key = createPrivateKey({ key: der, format: "der", type: "pkcs8" });
  const jwk = createPublicKey(key).export({ format: "jwk" }) as { x: string };
  const pubkey = Buffer.from(jwk.x, "base64url").toString("hex");
  return { key, pubkey };
}

/** The daemon client: lifecycle + pendingAcks, as in daemon-broker-client.ts. */
class SeedClient {
  lifecycle: WsLifecycle | null = null;
  pendingAcks = new Map<string, { resolve: (r: SendResult) => void; timer: NodeJS.Timeout }>();
  pushes = 0;
  next = 0;
  constructor(
    readonly url: string,
    readonly meshId: string,
    readonly memberId: string,
    readonly n: number,
  ) {}

  async connect() {
    const { key, pubkey } = memberKey(this.n);
    this.lifecycle = await connectWsWithBackoff({
      url: this.url,
      buildHello: async () => {
        // hello-sig.ts: ed25519 over `meshId|memberId|pubkey|timestamp`, hex.
        const timestamp = Date.now();
        const canonical = `${this.meshId}|${this.memberId}|${pubkey}|${timestamp}`;
        const signature = sign(null, Buffer.from(canonical, "utf8"), key).toString("hex");
        return {
          type: "hello",
          meshId: this.meshId,
          memberId: this.memberId,
          pubkey,
          displayName: `node-${this.n}`,
          sessionId: `daemon-${process.pid}-${this.n}`,
          pid: process.pid,
          cwd: process.cwd(),
          timestamp,
          signature,
        };
      },
      isHelloAck: (msg) => msg.type === "hello_ack",
      onMessage: (msg) => this.handleMessage(msg),
      onBeforeReconnect: (code) => this.failPendingAcks(`broker_disconnected_${code}`),
      log: () => {},
    });
  }

  handleMessage(msg: Record<string, unknown>) {
    if (msg.type === "ack") {
      const id = String(msg.id ?? "");
      const ack = this.pendingAcks.get(id);
      if (ack) {
        this.pendingAcks.delete(id);
        clearTimeout(ack.timer);
        if (typeof msg.error === "string" && msg.error.length > 0) {
          ack.resolve({ ok: false, error: msg.error });
        } else {
          ack.resolve({ ok: true, messageId: String(msg.messageId ?? id) });
        }
      }
      return;
    }
    if (msg.type === "push" || msg.type === "inbound") this.pushes++;
  }

  failPendingAcks(reason: string) {
    for (const [id, ack] of this.pendingAcks) {
      clearTimeout(ack.timer);
      ack.resolve({ ok: false, error: reason });
      this.pendingAcks.delete(id);
    }
  }

  /** daemon-broker-client.ts `send`, with the outbox's idempotency id. */
  send(targetSpec: string): Promise<SendResult> {
    this.next++;
    const id = `${this.meshId}-${this.next.toString(16).padStart(12, "0")}`;
    return new Promise<SendResult>((resolve) => {
      const timer = setTimeout(() => {
        if (this.pendingAcks.delete(id)) resolve({ ok: false, error: "ack_timeout" });
      }, SEND_ACK_TIMEOUT_MS);
      this.pendingAcks.set(id, { resolve, timer });
      try {
        this.lifecycle!.send({
          type: "send",
          id,
          client_message_id: id,
          targetSpec,
          priority: "next",
          nonce: randomBytes(24).toString("base64"),
          ciphertext: BODY_B64,
        });
      } catch (e) {
        this.pendingAcks.delete(id);
        clearTimeout(timer);
        resolve({ ok: false, error: `ws_write_failed: ${String(e)}` });
      }
    });
  }
}

async function runOne(c: SeedClient, count: number, inFlight: number, rtts: number[]) {
  if (inFlight <= 1) {
    for (let i = 0; i < count; i++) {
      const t = performance.now();
      const r = await c.send("*");
      if (!r.ok) throw new Error(`send failed: ${r.error}`);
      rtts.push(performance.now() - t);
    }
    return;
  }
  let started = 0;
  const worker = async () => {
    while (started < count) {
      started++;
      const r = await c.send("*");
      if (!r.ok) throw new Error(`send failed: ${r.error}`);
    }
  };
  await Promise.all(Array.from({ length: Math.min(inFlight, count) }, worker));
}

function quantile(xs: number[], q: number) {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.round((s.length - 1) * q)];
}

async function main() {
  const [url, connsArg] = process.argv.slice(2);
  const clients: SeedClient[] = [];
  for (let n = 1; n <= Number(connsArg ?? 1); n++) {
    const c = new SeedClient(url, `node-${n}`, `member-${n}`, n);
    await c.connect();
    clients.push(c);
  }
  console.log("ready");
  const rl = createInterface({ input: process.stdin });
  for await (const line of rl) {
    const [cmd, ...args] = line.trim().split(/\s+/);
    if (cmd === "round") {
      const [conns, inFlight, perConn] = args.map(Number);
      const rtts: number[] = [];
      const t = performance.now();
      await Promise.all(clients.slice(0, conns).map((c) => runOne(c, perConn, inFlight, rtts)));
      const elapsed = (performance.now() - t) / 1000;
      console.log(
        JSON.stringify({
          throughput: (conns * perConn) / elapsed,
          rtt_p50_us: quantile(rtts, 0.5) * 1000,
          rtt_p99_us: quantile(rtts, 0.99) * 1000,
        }),
      );
    } else if (cmd === "cpu") {
      const [inFlight, sends] = args.map(Number);
      const c0 = process.cpuUsage();
      const t = performance.now();
      await runOne(clients[0], sends, inFlight, []);
      const wall = performance.now() - t;
      const cpu = process.cpuUsage(c0);
      console.log(JSON.stringify({ cpu_us: cpu.user + cpu.system, wall_us: wall * 1000, sends }));
    } else if (cmd === "interop") {
      // Two seed clients in one mesh: each send to `*` is acked and pushed to the other.
      const a = new SeedClient(url, "node-interop", "member-a", 9001);
      const b = new SeedClient(url, "node-interop", "member-b", 9002);
      await a.connect();
      await b.connect();
      const sends = 10;
      let acked = 0;
      for (let i = 0; i < sends; i++) if ((await a.send("*")).ok) acked++;
      for (let i = 0; i < sends; i++) if ((await b.send("*")).ok) acked++;
      const deadline = Date.now() + 5000;
      while ((a.pushes < sends || b.pushes < sends) && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 10));
      }
      console.log(
        JSON.stringify({ hello_acked: 2, sends: 2 * sends, acked, pushes: a.pushes + b.pushes }),
      );
      await a.lifecycle?.close();
      await b.lifecycle?.close();
    } else if (cmd === "quit") {
      break;
    }
  }
  for (const c of clients) await c.lifecycle?.close();
  process.exit(0);
}

main().catch((e) => {
  console.error(String(e?.stack ?? e));
  process.exit(1);
});
