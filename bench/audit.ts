/**
 * Audit trail benchmark (not a test), on FerretDB (issue #17): does reading the trail cost the same at a million
 * events as at ten thousand, does verification run in constant memory, and what does the durable audit cost Proxy?
 *
 *   node --import tsx bench/audit.ts                           # 10k, 100k and 1M stored events, then the Proxy section
 *   node --import tsx bench/audit.ts --sizes 10000,100000      # a quick run
 *
 * A private FerretDB (test/ferretdb/bin/ferretdb, built when missing) on a free loopback port with its own SQLite
 * directory. The trail is filled through the repository's insertMany as group commits of --commit-size events
 * (16; each stored as one segment) with properly chained events (as AuditLog chains them: auditRecordOf, which
 * hashes over the previous hash) of 4 writers in tenant "dev" (80% of the events) and 2 writers in tenant
 * "globex" (20%), each writer registered first. At each size, in tenant "dev":
 *   - head       `repository.head(tenant, writer)` (galloping point lookups), a random writer each time
 *   - page       `listAuditPage` with limit 100 from a page token at a random position (what ListAuditEvents does)
 *   - page RPC   the same page through a real broker's ListAuditEvents (a `capvault dev` process on this database)
 *   - poll       the revocation poll as the broker runs it (REVOCATION_POLL below), with revocations stored at
 *                1% of the events (--revocations-per-event), none of them new
 *   - verify     `verifyAuditChain` over the whole tenant: events/s, and this process's peak RSS growth during it
 * Reads are repeated --reps times (50) after a few warm-up reads; p50 and p99 are printed, with the ratios of the
 * largest size to the smallest. CPU seconds of this process and of FerretDB are printed per step, to say which side
 * a cost is on.
 *
 * Then Proxy calls/s at concurrency 32, a distinct path per call, on two brokers side by side: `capvault dev` with
 * the in-memory store, and `capvault dev` with CAPVAULT_MONGODB_URI on this FerretDB database (the durable audit:
 * each call's event is stored before its answer). Each broker has its own peers process (HTTPS upstream +
 * oidc-provider, bench/support/peers.ts) and its account connected through the real OAuth flow. Rounds alternate the
 * order; medians across rounds and the ratio are printed.
 *
 * Flags: --sizes N,N,... (default 10000,100000,1000000), --reps N (50), --commit-size N (16: events per commit; 1 is
 * the worst case, a quiet broker's trail), --revocations-per-event X (0.01),
 * --proxy-calls N (3000 per segment), --proxy-rounds N (3), --skip-proxy, --dist DIR (the build the brokers run).
 */
import { execFileSync } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { availableParallelism, cpus, loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { credentials, Metadata, type ServiceError } from "@grpc/grpc-js";
import { MongoClient } from "mongodb";
import { auditRecordOf, GENESIS_HASH, type AuditEntry } from "../src/audit/audit-event.js";
import { listAuditPage } from "../src/audit/audit-pages.js";
import { verifyAuditChain, verifyEvents } from "../src/audit/verify-audit.js";
import { AdminServiceClient, type ListAuditEventsResponse } from "../src/gen/capvault/v1/admin.js";
import { ProxyServiceClient, type ProxyResponse } from "../src/gen/capvault/v1/proxy.js";
import { MongoAudit } from "../src/store/mongodb/mongodb-audit.js";
import { openMongoStore } from "../src/store/mongodb/mongodb-store.js";
import type { AuditRecord } from "../src/store/records.js";
import type { Store } from "../src/store/store.js";
import { freePort } from "../test/support/free-port.js";
import { CLIENT_ID_ENV, CLIENT_SECRET_ENV, Operator, writeCatalog } from "./support/capvault-setup.js";
import { startPrivateFerretDB, type PrivateFerretDB } from "./support/ferretdb.js";
import { drive, median, quantile } from "./support/load.js";
import type { PeersReady } from "./support/peers.js";
import { FIXTURES, REPO_ROOT } from "./support/paths.js";
import { cpuSecondsOf, rssOf, startBrokerProcess, startHelper, type BrokerProcess, type Child } from "./support/processes.js";

/**
 * The revocation poll as the broker runs it (src/capabilities/revocation-poller.ts: an incremental poll looks back
 * 60 s; nothing is that recent here). Replace this one function when the poll's query changes.
 */
const pollPositions = new WeakMap<Store, number>();
/** An idle poll as the broker's RevocationPoller runs it: read the log entry after the last one seen, by `_id`. */
const REVOCATION_POLL = async (store: Store): Promise<number> => {
  let next = pollPositions.get(store);
  if (next === undefined) pollPositions.set(store, (next = await store.revocations.logHead()));
  let found = 0;
  while (await store.revocations.readLog(next + found)) found++;
  return found;
};

// ---- options ----------------------------------------------------------------------------------------------------
const argv = process.argv.slice(2);
const value = (name: string) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
};
const num = (name: string, fallback: number) => {
  const v = value(name);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!(n > 0)) throw new Error(`${name} needs a positive number`);
  return n;
};
const SIZES = (value("--sizes") ?? "10000,100000,1000000").split(",").map(Number);
if (SIZES.some((n) => !Number.isInteger(n) || n < 1000) || SIZES.some((n, i) => i > 0 && n <= SIZES[i - 1])) {
  throw new Error("--sizes needs increasing integers >= 1000, e.g. 10000,100000");
}
const REPS = num("--reps", 50);
const REVOCATIONS_PER_EVENT = num("--revocations-per-event", 0.01);
const PROXY_CALLS = num("--proxy-calls", 3000);
const PROXY_ROUNDS = num("--proxy-rounds", 3);
const SKIP_PROXY = argv.includes("--skip-proxy");
const DIST = resolve(REPO_ROOT, value("--dist") ?? "dist");
/** Events per group commit and chain (one segment each): 16 is what a broker commits at concurrency ~16-32. */
const COMMIT_SIZE = num("--commit-size", 16);
const TENANT = "dev"; // the tenant of the dev operator capability, so the broker's RPC can read it
const DATABASE = `bench_audit_${randomBytes(4).toString("hex")}`;

const log = (line: string) => process.stderr.write(`[bench] ${line}\n`);
const out: string[] = [];
const p = (line = "") => {
  out.push(line);
  console.log(line);
};

// ---- filling the trail --------------------------------------------------------------------------------------------
interface Chain {
  tenant: string;
  writer: string;
  sequence: number;
  hash: string;
}

/** 4 writers in "dev", 2 in "globex"; 8 of every 10 events go to "dev". */
function makeChains(): Chain[] {
  const writer = (i: number) => `w${(Date.now() - 86_400_000 + i * 1000).toString(36)}${randomBytes(5).toString("hex")}`;
  return [
    ...[0, 1, 2, 3].map((i) => ({ tenant: TENANT, writer: writer(i), sequence: 0, hash: GENESIS_HASH })),
    ...[4, 5].map((i) => ({ tenant: "globex", writer: writer(i), sequence: 0, hash: GENESIS_HASH })),
  ];
}
const CHAIN_PATTERN = [0, 1, 2, 3, 4, 0, 1, 2, 3, 5];
const BLOCK_IDS = Array.from({ length: 64 }, () => randomBytes(32).toString("hex"));

/** The next event of a chain, exactly as AuditLog.chain() builds it. */
function nextEvent(chain: Chain, time: Date, n: number): AuditRecord {
  const deny = n % 10 === 9;
  const entry: AuditEntry = {
    tenant: chain.tenant,
    action: "proxy",
    subject: `agent-${n % 50}`,
    delegationChain: [BLOCK_IDS[n % 64], BLOCK_IDS[(n >> 6) % 64], BLOCK_IDS[(n >> 12) % 64]],
    connection: "conn_bench_1",
    provider: "gh",
    method: "GET",
    path: `/repos/acme/widgets/issues/${n}`,
    decision: deny ? "deny" : "allow",
    ...(deny ? { reason: "NO_MATCHING_GRANT", detail: "no grant allows GET /repos/acme/widgets/issues" } : { upstreamStatus: 200 }),
    latencyMs: 1 + (n % 7),
  };
  const full = auditRecordOf(entry, { id: randomUUID(), writer: chain.writer, sequence: chain.sequence + 1, time, previousHash: chain.hash });
  chain.sequence = full.sequence;
  chain.hash = full.hash;
  return full;
}

class Filler {
  stored = 0;
  private commits = 0;
  private readonly chains = makeChains();
  private clock = Date.now() - 30 * 86_400_000;

  constructor(private readonly store: Store) {}

  get devWriters(): Chain[] {
    return this.chains.filter((c) => c.tenant === TENANT);
  }

  async register(): Promise<void> {
    for (const [i, c] of this.chains.entries()) await this.store.audit.registerWriter({ tenant: c.tenant, writer: c.writer, startedAt: new Date(this.clock + i) });
  }

  /**
   * Insert events until `target` are stored, as brokers' group commits store them: each insertMany is one commit of
   * --commit-size events of one chain (a segment), commits of a chain in order, up to 4 commits in flight.
   */
  async fillTo(target: number): Promise<void> {
    const inFlight = new Set<Promise<void>>();
    const lastOfChain = new Map<Chain, Promise<void>>();
    let lastLog = performance.now();
    while (this.stored < target) {
      const chain = this.chains[CHAIN_PATTERN[this.commits++ % CHAIN_PATTERN.length]];
      const size = Math.min(COMMIT_SIZE, target - this.stored);
      // A commit's events share a time; time moves on by ~1 ms per event.
      const time = new Date(this.clock + this.stored);
      const events = Array.from({ length: size }, (_, i) => nextEvent(chain, time, this.stored + i));
      this.stored += size;
      const commit = (lastOfChain.get(chain) ?? Promise.resolve()).then(() => this.store.audit.insertMany(events));
      lastOfChain.set(chain, commit);
      inFlight.add(commit);
      void commit.finally(() => inFlight.delete(commit)).catch(() => undefined);
      if (inFlight.size >= 4) await Promise.race(inFlight);
      if (performance.now() - lastLog > 15_000) {
        log(`  ${this.stored} events stored`);
        lastLog = performance.now();
      }
    }
    await Promise.all(inFlight);
  }
}

// ---- measuring ----------------------------------------------------------------------------------------------------
interface Timed {
  p50: number;
  p99: number;
  /** CPU seconds per operation: this process, FerretDB. */
  selfCpuMs: number;
  dbCpuMs: number;
}

async function timed(reps: number, op: (i: number) => Promise<unknown>, dbPid: number, warmup = 3): Promise<Timed> {
  for (let i = 0; i < warmup; i++) await op(-1 - i);
  const times: number[] = [];
  const self0 = process.cpuUsage();
  const db0 = cpuSecondsOf(dbPid);
  for (let i = 0; i < reps; i++) {
    const t = performance.now();
    await op(i);
    times.push(performance.now() - t);
  }
  const self = process.cpuUsage(self0);
  times.sort((a, b) => a - b);
  return {
    p50: quantile(times, 0.5),
    p99: quantile(times, 0.99),
    selfCpuMs: (self.user + self.system) / 1000 / reps,
    dbCpuMs: ((cpuSecondsOf(dbPid) - db0) * 1000) / reps,
  };
}

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

/** Peak RSS (VmHWM) of this process since the last reset; reset by writing 5 to /proc/self/clear_refs. */
function resetPeakRss(): boolean {
  try {
    writeFileSync("/proc/self/clear_refs", "5");
    return true;
  } catch {
    return false;
  }
}
function peakRss(): number {
  const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync("/proc/self/status", "utf8"));
  return m ? Number(m[1]) * 1024 : 0;
}

interface VerifyResult {
  events: number;
  seconds: number;
  rssBefore: number;
  /** Peak RSS growth during verify (max of VmHWM after a reset and 20 ms samples), bytes. */
  peakGrowth: number;
  selfCpu: number;
  dbCpu: number;
}

async function measureVerify(store: Store, dbPid: number): Promise<VerifyResult> {
  gc();
  gc();
  const rssBefore = rssOf(process.pid);
  const hwmReset = resetPeakRss();
  let sampled = rssBefore;
  const sampler = setInterval(() => (sampled = Math.max(sampled, rssOf(process.pid))), 20);
  const self0 = process.cpuUsage();
  const db0 = cpuSecondsOf(dbPid);
  const t = performance.now();
  const result = await verifyAuditChain(store.audit, TENANT);
  const seconds = (performance.now() - t) / 1000;
  clearInterval(sampler);
  const self = process.cpuUsage(self0);
  if (!result.ok) throw new Error(`verification failed: ${JSON.stringify(result.broken)}`);
  const peak = Math.max(sampled, hwmReset ? peakRss() : 0);
  return {
    events: result.eventsChecked,
    seconds,
    rssBefore,
    peakGrowth: peak - rssBefore,
    selfCpu: (self.user + self.system) / 1e6,
    dbCpu: cpuSecondsOf(dbPid) - db0,
  };
}

/**
 * capvault's side of verification alone: the tenant's events read once into memory, then verifyEvents over them
 * (hash recomputation, links, sequence order) a few times. Per-event cost does not depend on the trail's size.
 */
async function measureVerifyInMemory(store: Store): Promise<number> {
  const writers = (await store.audit.writers(TENANT)).map((w) => w.writer);
  const events: AuditRecord[] = [];
  for await (const e of store.audit.scan(TENANT)) events.push(e);
  let checked = 0;
  const t = performance.now();
  for (let i = 0; i < 5; i++) {
    const r = await verifyEvents(writers, events);
    if (!r.ok) throw new Error(`in-memory verification failed: ${JSON.stringify(r.broken)}`);
    checked += r.eventsChecked;
  }
  return checked / ((performance.now() - t) / 1000);
}

const fmt = (ms: number) => (ms < 10 ? ms.toFixed(2) : ms < 100 ? ms.toFixed(1) : ms.toFixed(0)).padStart(7);
const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
const sizeLabel = (n: number) => (n >= 1e6 ? `${n / 1e6}M` : n >= 1e3 ? `${n / 1e3}k` : String(n));
const unary = <Res>(fn: (cb: (err: ServiceError | null, res: Res) => void) => void) =>
  new Promise<Res>((ok, no) => fn((err, res) => (err ? no(err) : ok(res))));

// ---- the Proxy section's brokers -----------------------------------------------------------------------------------
interface ProxyTarget {
  label: string;
  broker: BrokerProcess;
  client: ProxyServiceClient;
  connection: string;
  token: string;
}

async function startBrokerWithPeers(
  label: string,
  dir: string,
  env: NodeJS.ProcessEnv,
  children: Child[],
): Promise<ProxyTarget & { operator: Operator }> {
  const httpPort = await freePort();
  const callbackPrefix = `http://127.0.0.1:${httpPort}/oauth/callback`;
  const peers = await startHelper<PeersReady>("bench/support/peers.ts", [callbackPrefix]);
  children.push(peers);
  const providersDir = await writeCatalog(join(dir, label), peers.ready, readFileSync(join(FIXTURES, "test-ca.pem")));
  const broker = await startBrokerProcess(
    ["--grpc-addr", "127.0.0.1:0", "--http-addr", `127.0.0.1:${httpPort}`, "--providers-dir", providersDir],
    {
      CAPVAULT_OAUTH_ALLOW_INSECURE_LOOPBACK: "true",
      CAPVAULT_LOG_LEVEL: "warn",
      [CLIENT_ID_ENV]: peers.ready.clientId,
      [CLIENT_SECRET_ENV]: peers.ready.clientSecret,
      ...env,
    },
    [],
    join(DIST, "cli", "main.js"),
  );
  children.push(broker);
  const operator = new Operator(broker.address, broker.operatorToken);
  const connection = await operator.connectAccount(callbackPrefix);
  const token = await operator.mint(connection, `agent-${label}`);
  return { label, broker, operator, client: new ProxyServiceClient(broker.address, credentials.createInsecure()), connection, token };
}

let pathCounter = 0;
function proxyCall(t: ProxyTarget): Promise<void> {
  const md = new Metadata();
  md.set("authorization", `Bearer ${t.token}`);
  const path = `/repos/acme/widgets/issues/${pathCounter++}`;
  return new Promise((ok, no) =>
    t.client.proxy(
      { request: { connection: t.connection, method: "GET", path, query: [], headers: [], body: Buffer.alloc(0) } },
      md,
      { deadline: Date.now() + 30_000 },
      (err: ServiceError | null, res: ProxyResponse) => (err ? no(new Error(`${err.code} ${err.details}`)) : res.status !== 200 ? no(new Error(`status ${res.status}`)) : ok()),
    ),
  );
}

/** Wait until the given processes use under 10% of a core over 200 ms. */
async function quiesce(pids: number[]): Promise<void> {
  const t = performance.now();
  for (;;) {
    const c0 = pids.reduce((s, pid) => s + cpuSecondsOf(pid), 0);
    await new Promise((r) => setTimeout(r, 200));
    if (pids.reduce((s, pid) => s + cpuSecondsOf(pid), 0) - c0 <= 0.02) return;
    if (performance.now() - t > 120_000) throw new Error("processes did not become idle within 120 s");
  }
}

// ---- main -----------------------------------------------------------------------------------------------------------
async function main(): Promise<void> {
  const t0 = performance.now();
  const children: Child[] = [];
  let db: PrivateFerretDB | undefined;
  let store: Store | undefined;
  let reader: MongoClient | undefined;
  const dir = await mkdtemp(join(tmpdir(), "capvault-bench-audit-"));
  const cleanup = async () => {
    for (const c of children.reverse()) await c.stop().catch(() => undefined);
    await store?.close().catch(() => undefined);
    await reader?.close().catch(() => undefined);
    await db?.stop().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  };
  process.once("SIGINT", () => void cleanup().finally(() => process.exit(130)));
  try {
    let commit = "unknown";
    try {
      commit = execFileSync("git", ["rev-parse", "--short=12", "HEAD"], { cwd: REPO_ROOT, encoding: "utf8" }).trim();
    } catch {
      // not a git checkout
    }
    log("starting a private FerretDB");
    db = await startPrivateFerretDB();
    store = await openMongoStore(db.uri, DATABASE);
    await store.ensureIndexes();
    p(`capvault audit bench — ${new Date().toISOString()}, commit ${commit}, node ${process.version}, ${availableParallelism()} cores (${cpus()[0]?.model ?? "?"})`);
    p(`database: ${db.description}, private, on loopback; load average ${loadavg().map((l) => l.toFixed(2)).join(" ")} at start`);
    p(`trail: 6 writers (4 in tenant "dev" with 80% of the events, 2 in "globex"), group commits of ${COMMIT_SIZE} events; revocations: ${REVOCATIONS_PER_EVENT * 100}% of the events`);
    p(`reads: ${REPS} repetitions after 3 warm-up reads; CPU per read: this process / FerretDB`);

    // A broker on the same database, for ListAuditEvents through the RPC (and later for the Proxy section).
    const durable = await startBrokerWithPeers("ferretdb", dir, { CAPVAULT_MONGODB_URI: db.uri, CAPVAULT_MONGODB_DATABASE: DATABASE }, children);
    const admin = new AdminServiceClient(durable.broker.address, credentials.createInsecure());
    const operatorMd = new Metadata();
    operatorMd.set("authorization", `Bearer ${durable.broker.operatorToken}`);

    // Head and page reads go through a new repository each time: nothing this process learnt (the writer's own tail,
    // segment bounds remembered by earlier reads) helps them, as for a reader that has never seen the trail.
    const readerClient = (reader = await MongoClient.connect(db.uri));
    const coldReader = () => new MongoAudit(readerClient.db(DATABASE));
    const filler = new Filler(store);
    await filler.register();
    let revocations = 0;
    interface Row {
      size: number;
      head: Timed;
      page: Timed;
      rpc: Timed;
      poll: Timed;
      verify: VerifyResult;
    }
    const rows: Row[] = [];
    for (const size of SIZES) {
      const f0 = performance.now();
      log(`filling to ${size} events`);
      await filler.fillTo(size);
      const fillSeconds = (performance.now() - f0) / 1000;
      const wantRevocations = Math.round(size * REVOCATIONS_PER_EVENT);
      const r0 = performance.now();
      const old = new Date(Date.now() - 3_600_000);
      while (revocations < wantRevocations) {
        const n = Math.min(64, wantRevocations - revocations);
        await Promise.all(
          Array.from({ length: n }, (_, i) =>
            store!.revocations.insert({ id: randomBytes(32).toString("hex"), tenant: (revocations + i) % 5 ? TENANT : "globex", reason: "bench", revokedAt: old }),
          ),
        );
        revocations += n;
      }
      log(`  filled in ${fillSeconds.toFixed(1)} s (${Math.round((size - (rows.at(-1)?.size ?? 0)) / fillSeconds)} events/s); ${revocations} revocations (${((performance.now() - r0) / 1000).toFixed(1)} s)`);
      await quiesce([db.pid]);

      const writers = filler.devWriters;
      const pick = (i: number) => writers[(i + writers.length * 100) % writers.length];
      log("  head");
      const head = await timed(REPS, async (i) => {
        const w = pick(i);
        const h = await coldReader().head(TENANT, w.writer);
        if (h !== w.sequence) throw new Error(`head of ${w.writer} is ${h}, expected ${w.sequence}`);
      }, db.pid);

      // Page tokens at random positions (each from a one-event page at that position).
      const tokens: string[] = [];
      for (let i = 0; i < REPS + 3; i++) {
        const w = pick(i);
        const after = Math.floor(Math.random() * Math.max(1, w.sequence - 100));
        tokens.push((await listAuditPage(store.audit, { tenant: TENANT, limit: 1, writer: w.writer, afterSequence: after })).nextPageToken);
      }
      log("  page");
      const page = await timed(REPS, async (i) => {
        const res = await listAuditPage(coldReader(), { tenant: TENANT, limit: 100, pageToken: tokens[i + 3] });
        if (res.events.length !== 100) throw new Error(`a page of ${res.events.length} events`);
      }, db.pid);
      log("  page through the broker's ListAuditEvents");
      const rpc = await timed(REPS, async (i) => {
        const res = await unary<ListAuditEventsResponse>((cb) =>
          admin.listAuditEvents({ tenant: TENANT, afterSequence: 0, limit: 100, writer: "", pageToken: tokens[i + 3] }, operatorMd, cb),
        );
        if (res.events.length !== 100) throw new Error(`an RPC page of ${res.events.length} events`);
      }, db.pid);
      log("  revocation poll");
      pollPositions.delete(store!); // the poller has caught up with this size's revocations
      await REVOCATION_POLL(store!);
      const poll = await timed(REPS, async () => {
        if ((await REVOCATION_POLL(store!)) !== 0) throw new Error("the poll found new revocations");
      }, db.pid);
      log("  verify");
      await quiesce([db.pid]);
      const verify = await measureVerify(store, db.pid);
      const inMemoryRate = size === SIZES[0] ? await measureVerifyInMemory(store) : undefined;
      rows.push({ size, head, page, rpc, poll, verify });
      const line = (name: string, t: Timed) =>
        p(`  ${name.padEnd(34)} p50 ${fmt(t.p50)} ms  p99 ${fmt(t.p99)} ms   CPU/read ${t.selfCpuMs.toFixed(2)} / ${t.dbCpuMs.toFixed(2)} ms`);
      p();
      p(`${sizeLabel(size)} stored events (${size}; filled at ${Math.round((size - (rows.at(-2)?.size ?? 0)) / fillSeconds)} events/s), ${revocations} revocations; load average ${loadavg()[0].toFixed(2)}`);
      line("head (repository.head)", head);
      line("page (listAuditPage, 100)", page);
      line("page (ListAuditEvents RPC, 100)", rpc);
      line("revocation poll (log read by _id)", poll);
      p(
        `  verify (verifyAuditChain)          ${verify.events} events in ${verify.seconds.toFixed(1)} s = ${Math.round(verify.events / verify.seconds)} events/s; ` +
          `peak RSS +${mib(verify.peakGrowth)} over ${mib(verify.rssBefore)}; CPU ${verify.selfCpu.toFixed(1)} s here / ${verify.dbCpu.toFixed(1)} s FerretDB`,
      );
      if (inMemoryRate) p(`  verifyEvents, events in memory      ${Math.round(inMemoryRate)} events/s (capvault's side alone: hashing, links, order)`);
    }

    // ---- ratios ----
    const first = rows[0];
    const last = rows[rows.length - 1];
    const r = (a: number, b: number) => (a / b).toFixed(2);
    const verdict = (ok: boolean) => (ok ? "meets" : "MISSES");
    const tag = `${sizeLabel(last.size)}/${sizeLabel(first.size)}`;
    p();
    p(`ratios ${tag} (p50):`);
    p(`  head                  ${r(last.head.p50, first.head.p50)}  ${verdict(last.head.p50 <= 2 * first.head.p50)} target <= 2   (p99 ${r(last.head.p99, first.head.p99)})`);
    p(`  page                  ${r(last.page.p50, first.page.p50)}  ${verdict(last.page.p50 <= 2 * first.page.p50)} target <= 2   (p99 ${r(last.page.p99, first.page.p99)})`);
    p(`  page (RPC)            ${r(last.rpc.p50, first.rpc.p50)}  ${verdict(last.rpc.p50 <= 2 * first.rpc.p50)} target <= 2   (p99 ${r(last.rpc.p99, first.rpc.p99)})`);
    p(`  revocation poll       ${r(last.poll.p50, first.poll.p50)}  (p99 ${r(last.poll.p99, first.poll.p99)})`);
    const minRate = Math.min(...rows.map((x) => x.verify.events / x.verify.seconds));
    p(`verify: slowest ${Math.round(minRate)} events/s  ${verdict(minRate >= 20_000)} target >= 20000`);
    if (rows.length >= 2) {
      const prev = rows[rows.length - 2];
      p(
        `verify peak RSS growth: +${mib(last.verify.peakGrowth)} at ${sizeLabel(last.size)} vs +${mib(prev.verify.peakGrowth)} at ${sizeLabel(prev.size)} ` +
          `(${(last.verify.events / prev.verify.events).toFixed(0)}x the events)`,
      );
    }

    // ---- Proxy with the durable audit vs in memory ----
    if (!SKIP_PROXY) {
      log("Proxy section: starting the in-memory broker");
      const memory = await startBrokerWithPeers("memory", dir, {}, children);
      memory.operator.close();
      durable.operator.close();
      const targets = [memory, durable];
      log(`Proxy section: warm-up, then ${PROXY_ROUNDS} rounds of ${PROXY_CALLS} calls per broker at concurrency 32`);
      const busy = [memory.broker.pid, durable.broker.pid, db.pid];
      for (const t of targets) {
        const w = await drive(() => proxyCall(t), Math.ceil(PROXY_CALLS / 3), 32);
        if (w.errors) throw new Error(`${t.label} warm-up: ${w.errors} failed, first: ${w.firstError}`);
      }
      const rates: Record<string, number[]> = { memory: [], ferretdb: [] };
      const p50s: Record<string, number[]> = { memory: [], ferretdb: [] };
      for (let round = 0; round < PROXY_ROUNDS; round++) {
        for (const t of round % 2 ? [...targets].reverse() : targets) {
          await quiesce(busy);
          const s = await drive(() => proxyCall(t), PROXY_CALLS, 32);
          if (s.errors) throw new Error(`${t.label}: ${s.errors} of ${PROXY_CALLS} failed, first: ${s.firstError}`);
          rates[t.label].push(s.latencies.length / s.seconds);
          p50s[t.label].push(quantile([...s.latencies].sort((a, b) => a - b), 0.5));
        }
      }
      p();
      p(`Proxy, concurrency 32, a distinct path per call, ${PROXY_ROUNDS} rounds x ${PROXY_CALLS} calls per broker (medians across rounds):`);
      p(`  capvault dev, in-memory store          ${Math.round(median(rates.memory)).toString().padStart(6)} calls/s  p50 ${fmt(median(p50s.memory))} ms`);
      p(`  capvault dev, FerretDB (durable audit) ${Math.round(median(rates.ferretdb)).toString().padStart(6)} calls/s  p50 ${fmt(median(p50s.ferretdb))} ms`);
      const ratios = rates.ferretdb.map((x, i) => x / rates.memory[i]);
      p(`  calls/s FerretDB / in-memory           ${(median(rates.ferretdb) / median(rates.memory)).toFixed(2)}  (per round ${Math.min(...ratios).toFixed(2)}-${Math.max(...ratios).toFixed(2)})`);
      memory.client.close();
    }
    durable.client.close();
    admin.close();
    p();
    p(`total ${((performance.now() - t0) / 1000).toFixed(0)} s; load average ${loadavg().map((l) => l.toFixed(2)).join(" ")} at end`);
  } finally {
    await cleanup();
  }
}

await main();
