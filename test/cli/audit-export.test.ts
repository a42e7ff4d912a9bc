import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuditLog } from "../../src/audit/audit-log.js";
import { connect } from "../../src/client/index.js";
import { openMongoStore } from "../../src/store/mongodb/mongodb-store.js";
import type { Store } from "../../src/store/store.js";
import { startDevBroker, type DevBroker } from "../support/broker-harness.js";
import { runCli } from "../support/broker-process.js";
import { storedAuditEvents } from "../support/audit-documents.js";

/**
 * `capvault audit export` and `capvault audit verify --file` on a real trail: `capvault dev` (the built CLI) on the
 * FerretDB test database, with real Proxy calls and operator actions, plus a second writer's chain in the same tenant
 * (an AuditLog of its own, as a second broker process would write it) long enough that the export pages across
 * chains with page tokens. The export is verified offline; then single edits to the file are named by line.
 * Run `npm run build` first.
 */

let d: DevBroker;
let store: Store;
let dir: string;
let exported: string;
let lines: string[];
let secondWriter: string;
const SECOND_CHAIN_EVENTS = 1100;

const cli = (args: string[], env: NodeJS.ProcessEnv = {}) =>
  runCli(args, { env: { ...process.env, CAPVAULT_TOKEN: d.operatorToken, ...d.cliEnv, ...env }, timeoutMs: 60_000 });

/** Write `content` to a file in the test directory and run `capvault audit verify --file` on it. */
async function verifyContent(name: string, content: string) {
  const file = join(dir, name);
  await writeFile(file, content);
  return cli(["audit", "verify", "--file", file], { CAPVAULT_TOKEN: "", CAPVAULT_GRPC_ADDR: "127.0.0.1:1" });
}

const parse = (line: string) => JSON.parse(line) as Record<string, unknown> & { id: string; writer: string; sequence: number; time: string };

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "capvault-audit-export-"));
  d = await startDevBroker();
  const connection = await d.connectAccount("alice");
  const minted = await d.mint([{ connection, method: "GET", pathPrefix: "/repos/acme/" }], 3600, "agent-9");
  const agent = connect(d.address, minted.token);
  try {
    for (const path of ["/repos/acme/widgets", "/repos/acme/widgets/issues", "/repos/acme/gadgets"]) {
      expect((await agent.fetch(connection, { path, query: { page: "2" } })).status).toBe(200);
    }
    await agent.fetch(connection, { path: "/repos/globex/secrets" }).catch(() => undefined); // denied, audited
  } finally {
    agent.close();
  }
  // A second writer in the same tenant, on the same database: its own chain, as another broker process writes it.
  store = await openMongoStore(d.db.uri, d.db.name);
  const second = new AuditLog(store.audit);
  secondWriter = second.writer;
  await Promise.all(
    Array.from({ length: SECOND_CHAIN_EVENTS }, (_, i) =>
      second.recordAndWait({ tenant: "dev", action: "proxy", subject: "agent-b", method: "GET", path: `/b/${i}`, decision: i % 7 ? "allow" : "deny", upstreamStatus: i % 7 ? 200 : 0, latencyMs: i % 5 }),
    ),
  );
  exported = join(dir, "trail.jsonl");
  const r = await cli(["audit", "export", "--tenant", "dev", "--out", exported]);
  expect(r.code, r.stderr).toBe(0);
  lines = (await readFile(exported, "utf8")).split("\n").filter(Boolean);
}, 180_000);

afterAll(async () => {
  await store?.close();
  await d?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("capvault audit export", () => {
  it("writes every event of every chain as JSON lines with its chain proof (file mode 0600, nothing partial left)", async () => {
    const stored = (await storedAuditEvents(d.db.db, (e) => e.tenant === "dev")).length;
    expect(lines).toHaveLength(stored);
    expect(stored).toBeGreaterThan(SECOND_CHAIN_EVENTS + 5);
    const events = lines.map(parse);
    const writers = [...new Set(events.map((e) => e.writer))];
    expect(writers).toHaveLength(2);
    expect(writers).toContain(secondWriter);
    for (const w of writers) {
      const chain = events.filter((e) => e.writer === w);
      expect(chain.map((e) => e.sequence)).toEqual(chain.map((_, i) => i + 1));
      for (const [i, e] of chain.entries()) {
        expect(e.hash).toMatch(/^[0-9a-f]{64}$/);
        if (i > 0) expect(e.previousHash).toBe(chain[i - 1].hash);
      }
    }
    expect(events.some((e) => e.action === "proxy" && e.path === "/repos/acme/widgets/issues" && e.decision === "allow")).toBe(true);
    expect((await stat(exported)).mode & 0o777).toBe(0o600);
    await expect(stat(`${exported}.partial`)).rejects.toThrow();

    const toStdout = await cli(["audit", "export", "--tenant", "dev"]);
    expect(toStdout.code, toStdout.stderr).toBe(0);
    expect(toStdout.stdout.split("\n").filter(Boolean)).toEqual(lines);
    expect(toStdout.stderr).toContain(`exported ${lines.length} event(s) of tenant dev in 2 chain(s)`);
  });

  it("--since/--until keep the events in [since, until); --writer W --after N exports one chain after N", async () => {
    const events = lines.map(parse);
    const times = [...new Set(events.map((e) => e.time))].sort();
    const since = times[Math.floor(times.length / 3)];
    const until = times[Math.floor((2 * times.length) / 3)];
    const r = await cli(["audit", "export", "--tenant", "dev", "--since", since, "--until", until]);
    expect(r.code, r.stderr).toBe(0);
    const ranged = r.stdout.split("\n").filter(Boolean).map(parse);
    const expected = events.filter((e) => e.time >= since && e.time < until);
    expect(expected.length).toBeGreaterThan(0);
    expect(ranged.map((e) => e.id)).toEqual(expected.map((e) => e.id));

    const one = await cli(["audit", "export", "--tenant", "dev", "--writer", secondWriter, "--after", "1000"]);
    expect(one.code, one.stderr).toBe(0);
    const chain = one.stdout.split("\n").filter(Boolean).map(parse);
    expect(chain.map((e) => e.sequence)).toEqual(Array.from({ length: SECOND_CHAIN_EVENTS - 1000 }, (_, i) => 1001 + i));
    expect(chain.every((e) => e.writer === secondWriter)).toBe(true);

    // A range export starts mid-chain: it still verifies offline.
    const ok = await verifyContent("ranged.jsonl", r.stdout);
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    const okChain = await verifyContent("one-chain.jsonl", one.stdout);
    expect(okChain.code, okChain.stdout).toBe(0);
    expect(okChain.stdout).toContain(`writer ${secondWriter}: sequences 1001-${SECOND_CHAIN_EVENTS} (${SECOND_CHAIN_EVENTS - 1000} event(s))`);
  });
});

describe("capvault audit verify --file (offline)", () => {
  it("an export of the real trail verifies with no broker and no token (exit 0)", async () => {
    const r = await cli(["audit", "verify", "--file", exported], { CAPVAULT_TOKEN: "", CAPVAULT_GRPC_ADDR: "127.0.0.1:1" });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain(`${lines.length} event(s) in 2 chain(s) verified, every chain intact`);
    const withTenant = await cli(["audit", "verify", "--file", exported, "--tenant", "dev"]);
    expect(withTenant.code).toBe(0);
  });

  it("editing one field of one line is named: line number, event id, writer, sequence and problem (exit 1)", async () => {
    const index = lines.findIndex((l) => parse(l).path === "/repos/acme/widgets/issues");
    const event = parse(lines[index]);
    const edited = [...lines];
    edited[index] = JSON.stringify({ ...event, path: "/repos/acme/widgets/pulls" });
    const r = await verifyContent("edited-path.jsonl", `${edited.join("\n")}\n`);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`is BROKEN at line ${index + 1} (event ${event.id}, writer ${event.writer}, sequence ${event.sequence})`);
    expect(r.stdout).toContain("content does not match its hash");

    // A one-millisecond change of time, and a number, are edits too.
    const k = lines.findIndex((l) => parse(l).writer === secondWriter && parse(l).sequence === 500);
    const e500 = parse(lines[k]);
    const shifted = [...lines];
    shifted[k] = JSON.stringify({ ...e500, time: new Date(Date.parse(e500.time) + 1).toISOString() });
    const t = await verifyContent("edited-time.jsonl", shifted.join("\n"));
    expect(t.code).toBe(1);
    expect(t.stdout).toContain(`at line ${k + 1} (event ${e500.id}, writer ${secondWriter}, sequence 500)`);
    const latency = [...lines];
    latency[k] = JSON.stringify({ ...e500, latencyMs: Number(e500.latencyMs ?? 0) + 1 });
    expect((await verifyContent("edited-latency.jsonl", latency.join("\n"))).stdout).toContain(`at line ${k + 1} `);
  });

  it("a deleted line, a recomputed hash and a malformed line are named too", async () => {
    const k = lines.findIndex((l) => parse(l).writer === secondWriter && parse(l).sequence === 700);
    const next = parse(lines[k + 1]);
    const deleted = lines.filter((_, i) => i !== k);
    const r = await verifyContent("deleted.jsonl", deleted.join("\n"));
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`at line ${k + 1} (event ${next.id}, writer ${secondWriter}, sequence 701)`);
    expect(r.stdout).toContain("expected sequence 700 but found 701: events are missing");

    // Whoever edits an event and recomputes its hash breaks the next event's link.
    const { hashAuditRecord } = await import("../../src/audit/audit-event.js");
    const { auditRecordFromJson } = await import("../../src/audit/audit-export.js");
    const record = auditRecordFromJson(lines[k]);
    const forged = { ...record, decision: "deny" };
    const rehashed = [...lines];
    rehashed[k] = JSON.stringify({ ...parse(lines[k]), decision: "deny", hash: hashAuditRecord(forged) });
    const f = await verifyContent("rehashed.jsonl", rehashed.join("\n"));
    expect(f.code).toBe(1);
    expect(f.stdout).toContain(`at line ${k + 2} (event ${next.id}, writer ${secondWriter}, sequence 701)`);
    expect(f.stdout).toContain("does not link to the previous event's hash");

    const garbled = [...lines];
    garbled[3] = "{not json";
    const g = await verifyContent("garbled.jsonl", garbled.join("\n"));
    expect(g.code).toBe(1);
    expect(g.stdout).toContain("BROKEN at line 4");
    expect(g.stdout).toContain("not a valid audit event: not JSON");
    const extra = [...lines];
    extra[5] = JSON.stringify({ ...parse(lines[5]), approvedBy: "someone" });
    expect((await verifyContent("extra-field.jsonl", extra.join("\n"))).stdout).toContain('at line 6 ');
    const otherTenant = await cli(["audit", "verify", "--file", exported, "--tenant", "globex"]);
    expect(otherTenant.code).toBe(1);
    expect(otherTenant.stdout).toContain('belongs to tenant "dev"');
  });

  it("usage errors exit 2", async () => {
    const missing = await cli(["audit", "verify", "--file", join(dir, "nope.jsonl")]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("cannot read");
    expect((await cli(["audit", "export", "--tenant", "dev", "--after", "3"])).stderr).toContain("--after needs --writer");
    expect((await cli(["audit", "export", "--tenant", "dev", "--since", "yesterday"])).code).toBe(2);
    expect((await cli(["audit", "export", "--tenant", "dev", "--since", "2026-12-02T00:00:00Z", "--until", "2026-12-01T00:00:00Z"])).code).toBe(2);
    expect((await cli(["audit", "verify", "--file", exported, "--once"])).code).toBe(2);
    expect((await cli(["audit", "export"])).stderr).toContain("--tenant is required");
    expect((await cli(["audit", "export", "--tenant", "dev", "--file", "x"])).stderr).toContain("--file is not an option of export");
  });
});
