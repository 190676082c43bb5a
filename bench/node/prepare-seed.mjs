// Turns the seed text shared/seeds/ws-lifecycle.ts.txt into gen/ws-lifecycle.ts.
//
// The stored seed lost its line breaks (the whole file is one line) and the
// generic arguments of its types (`Record<…>`, `Promise<…>`): block comments and
// bare generic names are still valid TypeScript for tsx (which strips types without
// checking them), but each `//` line comment would now swallow the rest of the
// file. Those comments are removed here, each up to the code that followed it in the
// original; the code itself is not touched. The script fails if a `//` comment is
// left or an anchor is missing, so a changed seed cannot silently load wrong.
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const seed = process.argv[2] ?? join(here, "../../../shared/seeds/ws-lifecycle.ts.txt");
let text = readFileSync(seed, "utf8");

// Each line-comment run and the code that came right after it in the original.
const runs = [
  ["// Liveness watchdog:", "const PING_INTERVAL_MS"],
  ["// Build and send the hello inside a microtask", "(async () =>"],
  ["// Start liveness watchdog only after a successful handshake.", "if (watchdogTimer)"],
];
for (const [start, resume] of runs) {
  const i = text.indexOf(start);
  const j = i < 0 ? -1 : text.indexOf(resume, i);
  if (i < 0 || j < 0) {
    console.error(`prepare-seed: anchor not found: ${start} … ${resume}`);
    process.exit(1);
  }
  text = text.slice(0, i) + "\n" + text.slice(j);
}
// Any `//` left that is not part of a URL (`wss://`) would break the module.
const left = text.match(/(^|[^:"'])\/\/(?!\/)/);
if (left) {
  console.error(`prepare-seed: a line comment is left near: ${text.slice(left.index, left.index + 60)}`);
  process.exit(1);
}
mkdirSync(join(here, "gen"), { recursive: true });
writeFileSync(join(here, "gen/ws-lifecycle.ts"), text);
