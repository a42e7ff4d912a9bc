/**
 * Proxy benchmark (not a test): what capvault's Proxy costs over the least a gRPC relay must do, on one machine, in
 * one run.
 *
 *   npm run bench:proxy                          # builds, then the full default run (~6-9 min on 2 cores)
 *   node --import tsx bench/proxy.ts [--quick]   # against the existing dist/ build
 *
 * Variants, each measured at concurrency 1 and 64:
 *   (a) direct      undici keep-alive pool -> the HTTPS upstream (no gRPC at all)
 *   (b) floor       gRPC client -> floor relay process (grpc-js, same generated ProxyService, fixed token, no checks,
 *                   undici keep-alive) -> upstream
 *   (c) capvault    gRPC client -> `capvault dev` process (the built CLI) -> upstream, with a warm 3-block capability
 *                   (minted, attenuated twice through the broker's RPCs, used once before measuring)
 *   (d) first-seen  as (c), but a different, never-seen 3-block capability on every call (pre-generated)
 * Agent traffic, each compared with the relay serving the same requests:
 *   (e) the floor relay with a distinct path on every call (never repeated in the run)
 *   (f) (g) (h)     capvault, distinct paths, warm 1-, 3- and 8-block tokens
 *   (i) capvault, distinct paths, a new sub-agent token (Attenuate RPC from an orchestrator's token) every 50 calls
 *   (j) the relay and (k) capvault with a POST JSON body under a body caveat
 * The upstream and oidc-provider run in a third process (bench/support/peers.ts); the user's account is connected
 * through the real OAuth authorization-code flow. The client side of (b)-(d) is this process, one gRPC channel per
 * server. Variants run in rounds, in a rotating order, and the medians across rounds are printed; then the broker's
 * RSS is read (/proc/<pid>/status VmRSS) after 10k and 100k more Proxy calls at concurrency 64.
 *
 * Flags: --decision-cache on|off (off: capabilities.decisionCacheSize 0), --runtime native|wasm|auto,
 * --quick (3 rounds of fewer calls, 20k RSS calls: a smoke run of ~1-2 min), --rounds N, --calls1 N,
 * --calls64 N, --calls64-first-seen N (default calls64/3), --rss-calls N, --rss-max-seconds N (default 240: the RSS
 * phase stops there and says so), --store memory|ferretdb (the broker's store: dev's in-memory store by default;
 * ferretdb runs `capvault dev` against FerretDB, built from test/ferretdb, or MONGODB_URI), --rss-store memory|ferretdb
 * (the RSS phase's broker; ferretdb by default, a second `capvault dev` started after the timed rounds, because the
 * in-memory store keeps every audit event; it first serves --rss-warmup N calls, default 20k, as the first broker
 * served the rounds), --cpu-prof DIR (profile
 * the broker and relay processes with node --cpu-prof; written when they exit), --node-args "ARGS" (extra node flags for the broker
 * and relay, e.g. "--trace-gc"), --skip-rss, --variants abcd (a subset, for profiling), --dist DIR (the build to run instead of
 * dist/, e.g. a private `tsc -p tsconfig.build.json --outDir .cache/bench-dist` while others rebuild dist/).
 */
import { randomBytes } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { availableParallelism, cpus, loadavg, tmpdir } from "node:os";
import { join, relative, resolve } from "node:path";
import { credentials, Metadata, type ServiceError } from "@grpc/grpc-js";
import { Agent } from "undici";
import { ProxyServiceClient, type ProxyResponse } from "../src/gen/capvault/v1/proxy.js";
import { BLOCK_2, BLOCK_3, CLIENT_ID_ENV, EIGHT_BLOCKS, CLIENT_SECRET_ENV, distinctTokens, Operator, writeCatalog } from "./support/capvault-setup.js";
import { drive, median, summarize, type Summary } from "./support/load.js";
import type { PeersReady } from "./support/peers.js";
import { FIXTURES, REPO_ROOT } from "./support/paths.js";
import { freePort } from "../test/support/free-port.js";
import { cpuSecondsOf, rssOf, threadIdsOf, startBrokerProcess, startHelper, type Child } from "./support/processes.js";

// ---- options ----------------------------------------------------------------------------------------------------
const argv = process.argv.slice(2);
const flag = (name: string) => argv.includes(name);
const value = (name: string) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
};
const num = (name: string, fallback: number) => {
  const v = value(name);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${name} needs a positive integer`);
  return n;
};
const QUICK = flag("--quick");
const ROUNDS = num("--rounds", QUICK ? 3 : 5);
const CALLS_1 = num("--calls1", QUICK ? 150 : 300);
const CALLS_64 = num("--calls64", QUICK ? 1500 : 2000);
const RSS_CALLS = num("--rss-calls", QUICK ? 20_000 : 100_000);
const RSS_FIRST = Math.min(10_000, RSS_CALLS);
const RSS_WARMUP = num("--rss-warmup", QUICK ? 5_000 : 20_000);
const RSS_MAX_SECONDS = num("--rss-max-seconds", QUICK ? 120 : 240);
const SKIP_RSS = flag("--skip-rss");
const STORE = value("--store") ?? "memory";
// The in-memory dev store keeps every audit event (by design: it is the whole trail), so RSS flatness is measured
// against a broker with a database, as deployed: by default a second `capvault dev` against FerretDB.
const RSS_STORE = value("--rss-store") ?? "ferretdb";
const CPU_PROF = value("--cpu-prof");
const DIST = resolve(REPO_ROOT, value("--dist") ?? "dist");
if (STORE !== "memory" && STORE !== "ferretdb") throw new Error("--store must be memory or ferretdb");
if (RSS_STORE !== "memory" && RSS_STORE !== "ferretdb") throw new Error("--rss-store must be memory or ferretdb");
const WARMUP_1 = Math.ceil(CALLS_1 / 3);
const WARMUP_64 = Math.ceil(CALLS_64 / 3);
// (d) needs a minted token per call, and minting through the broker is slow: fewer (d) calls at concurrency 64.
const CALLS_64_D = num("--calls64-first-seen", Math.ceil(CALLS_64 / 3));
const callsFor = (v: VariantKey, conc: number) => (conc === 1 ? CALLS_1 : v === "d" ? CALLS_64_D : CALLS_64);
const CONCURRENCIES = [1, 64] as const;

const PATH = "/repos/acme/widgets/issues";
const QUERY = [{ name: "state", value: "open" }];

/** Agent traffic: (e)-(k) send a distinct path on every call (never repeated in the run), as agents do. */
const DISTINCT_PREFIX = "/repos/acme/widgets/issues/";
/** The JSON body of (j) and (k), under the body caveat `state` in {open, closed}. */
const POST_BODY = Buffer.from(JSON.stringify({ title: "bench issue", state: "open", labels: ["bench"] }));
/** Calls per sub-agent token in (i). */
const CALLS_PER_SUB_AGENT = 50;

type VariantKey = "a" | "b" | "c" | "d" | "e" | "f" | "g" | "h" | "i" | "j" | "k";
const VARIANTS: Record<VariantKey, string> = {
  a: "(a) direct undici",
  b: "(b) floor relay",
  c: "(c) capvault, warm token",
  d: "(d) capvault, first-seen",
  e: "(e) floor relay, distinct",
  f: "(f) distinct, 1 block",
  g: "(g) distinct, 3 blocks",
  h: "(h) distinct, 8 blocks",
  i: "(i) sub-agent/50, distinct",
  j: "(j) relay, POST body",
  k: "(k) POST body caveat",
};
/** The floor relay variant each capvault variant is compared with (the same requests, no checks). */
const REFERENCE: Partial<Record<VariantKey, VariantKey>> = { c: "b", d: "b", f: "e", g: "e", h: "e", i: "e", k: "j" };
const ONLY = value("--variants");
const ALL: VariantKey[] = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k"];
const ORDER: VariantKey[] = ALL.filter((v) => !ONLY || ONLY.includes(v));
if (ORDER.length === 0) throw new Error(`--variants needs some of ${ALL.join(", ")}`);
/** --decision-cache off: the broker runs with capabilities.decisionCacheSize 0 (no target may rest on it). */
const DECISION_CACHE = value("--decision-cache") ?? "on";
if (DECISION_CACHE !== "on" && DECISION_CACHE !== "off") throw new Error("--decision-cache must be on or off");
/** --runtime native|wasm|auto: the broker's capabilities.runtime (default auto: native when built). */
const RUNTIME = value("--runtime") ?? "auto";

const log = (line: string) => process.stderr.write(`[bench] ${line}\n`);

function grpcProxyCall(
  client: ProxyServiceClient,
  connection: string,
  token: string,
  request: { method: string; path: string; body?: Buffer } = { method: "GET", path: PATH },
): Promise<void> {
  const md = new Metadata();
  md.set("authorization", `Bearer ${token}`);
  const headers = request.body ? [{ name: "content-type", value: "application/json" }] : [];
  return new Promise((resolve, reject) =>
    client.proxy(
      { request: { connection, method: request.method, path: request.path, query: QUERY, headers, body: request.body ?? Buffer.alloc(0) } },
      md,
      { deadline: Date.now() + 30_000 },
      (err: ServiceError | null, res: ProxyResponse) => {
        if (err) reject(new Error(`${err.code} ${err.details}`));
        else if (res.status !== 200) reject(new Error(`upstream status ${res.status}`));
        else resolve();
      },
    ),
  );
}

const fmtMs = (ms: number) => (ms < 10 ? ms.toFixed(3) : ms.toFixed(2)).padStart(7);
const fmtRate = (r: number) => Math.round(r).toString();
const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;

async function main(): Promise<void> {
  const t0 = performance.now();
  const loadStart = loadavg();
  const cleanups: Array<() => Promise<unknown>> = [];
  const children: Child[] = [];
  const dir = await mkdtemp(join(tmpdir(), "capvault-bench-proxy-"));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const stopAll = async () => {
    for (const c of children.reverse()) await c.stop().catch(() => undefined);
    for (const f of cleanups.reverse()) await f().catch(() => undefined);
  };
  process.once("SIGINT", () => void stopAll().finally(() => process.exit(130)));

  try {
    const ca = readFileSync(join(FIXTURES, "test-ca.pem"));
    const httpPort = await freePort();
    const callbackPrefix = `http://127.0.0.1:${httpPort}/oauth/callback`;

    log("starting the peers process (HTTPS upstream + oidc-provider)");
    const peers = await startHelper<PeersReady>("bench/support/peers.ts", [callbackPrefix]);
    children.push(peers);
    const origin = `https://localhost:${peers.ready.upstreamPort}`;
    const providersDir = await writeCatalog(dir, peers.ready, ca);

    const baseEnv: NodeJS.ProcessEnv = {
      CAPVAULT_OAUTH_ALLOW_INSECURE_LOOPBACK: "true",
      CAPVAULT_CAPABILITY_RUNTIME: RUNTIME,
      ...(DECISION_CACHE === "off" ? { CAPVAULT_DECISION_CACHE_SIZE: "0" } : {}),
      CAPVAULT_LOG_LEVEL: "warn",
      [CLIENT_ID_ENV]: peers.ready.clientId,
      [CLIENT_SECRET_ENV]: peers.ready.clientSecret,
    };
    let database: { uri: string; description: string } | undefined;
    const storeEnv = async (store: string): Promise<{ env: NodeJS.ProcessEnv; label: string }> => {
      if (store === "memory") return { env: baseEnv, label: "in-memory (capvault dev)" };
      if (!database) {
        const { startTestDatabase } = await import("../test/support/test-database-server.js");
        log("starting FerretDB (building it from test/ferretdb if needed)");
        const db = await startTestDatabase();
        cleanups.push(() => db.stop());
        database = db;
      }
      return {
        env: { ...baseEnv, CAPVAULT_MONGODB_URI: database.uri, CAPVAULT_MONGODB_DATABASE: `bench_${randomBytes(4).toString("hex")}` },
        label: `${database.description} (capvault dev with CAPVAULT_MONGODB_URI)`,
      };
    };
    const nodeArgs = [...(CPU_PROF ? ["--cpu-prof", `--cpu-prof-dir=${CPU_PROF}`] : []), ...(value("--node-args")?.split(" ").filter(Boolean) ?? [])];
    const cli = join(DIST, "cli", "main.js");
    /** A `capvault dev` broker on `store`, with the account connected and a warm 3-block token. */
    const startCapvault = async (store: string) => {
      const { env: storeVars, label } = await storeEnv(store);
      // Its own metrics port: the bench reads the decision cache's hits from it around each segment.
      const metricsUrl = `http://127.0.0.1:${await freePort()}/metrics`;
      const env = { ...storeVars, CAPVAULT_METRICS_ADDR: new URL(metricsUrl).host };
      log(`starting the broker (${label}): node ${[...nodeArgs, relative(REPO_ROOT, cli)].join(" ")} dev`);
      const broker = await startBrokerProcess(
        ["--grpc-addr", "127.0.0.1:0", "--http-addr", `127.0.0.1:${httpPort}`, "--providers-dir", providersDir],
        env,
        nodeArgs,
        cli,
      );
      children.push(broker);
      const operator = new Operator(broker.address, broker.operatorToken);
      log("connecting the account through the OAuth authorization-code flow");
      const connection = await operator.connectAccount(callbackPrefix);
      let warm = await operator.mint(connection, "agent-warm");
      warm = await operator.attenuate(warm, BLOCK_2);
      warm = await operator.attenuate(warm, BLOCK_3);
      return { broker, operator, connection, warm, label, metricsUrl };
    };
    /** Warm tokens of 1 and 8 blocks, and the POST token (GET and POST, a body caveat): (f), (h), (k). */
    const agentTokens = async (operator: Operator, connection: string) => {
      const one = await operator.mint(connection, "agent-1-block");
      let eight = await operator.mint(connection, "agent-8-blocks");
      for (const restriction of EIGHT_BLOCKS) eight = await operator.attenuate(eight, restriction);
      let post = await operator.mint(connection, "agent-post", ["GET", "POST"]);
      post = await operator.attenuate(post, BLOCK_2);
      post = await operator.attenuate(post, { methods: ["POST"], body: [{ name: "state", values: ["open", "closed"] }] });
      return { one, eight, post };
    };
    const capvault = await startCapvault(STORE);
    /**
     * What the broker's own metrics say so far: its decision-cache hits, and the seconds and counts of its Proxy calls
     * and of their admission and upstream steps (histogram sums and counts, all label sets together).
     */
    const brokerCounters = async () => {
      const text = await (await fetch(capvault.metricsUrl)).text();
      const total = (name: string, required = true): number => {
        let sum = 0;
        let found = false;
        for (const m of text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, "gm"))) {
          sum += Number(m[1]);
          found = true;
        }
        if (!found && required) throw new Error(`the broker's metrics carry no ${name}`);
        return sum;
      };
      const step = (name: string) => ({ seconds: total(`${name}_sum`), count: total(`${name}_count`) });
      return {
        hits: total("capvault_decision_cache_hits_total"),
        // Native authorizations run on libuv's threads rather than inline (none on the wasm runtime).
        offloaded: total("capvault_native_authorizations_offloaded_total", false),
        call: step("capvault_proxy_call_duration_seconds"),
        admission: step("capvault_proxy_authorization_duration_seconds"),
        upstream: step("capvault_proxy_upstream_duration_seconds"),
      };
    };
    type BrokerCounters = Awaited<ReturnType<typeof brokerCounters>>;
    /** Mean milliseconds of a step between two readings. */
    const meanMs = (a: BrokerCounters, b: BrokerCounters, k: "call" | "admission" | "upstream") =>
      ((b[k].seconds - a[k].seconds) / Math.max(1, b[k].count - a[k].count)) * 1000;
    const { broker, operator, connection, warm } = capvault;
    const storeLabel = capvault.label;
    const agents = await agentTokens(operator, connection);

    log("starting the floor relay process");
    const relay = await startHelper<{ address: string }>("bench/support/floor-relay.ts", [origin, join(dir, "ca.pem")], nodeArgs);
    children.push(relay);

    // ---- the capabilities ----
    const dNeeded = ORDER.includes("d") ? WARMUP_1 + Math.ceil(CALLS_64_D / 3) + ROUNDS * (CALLS_1 + CALLS_64_D) : 0;
    log(`pre-generating ${dNeeded} distinct 3-block capabilities (Mint RPC + 2 offline attenuations each)`);
    const tg0 = performance.now();
    const fresh = dNeeded === 0 ? [] : await distinctTokens(operator, connection, dNeeded, DIST, (n) => log(`  ${n} / ${dNeeded}`));
    log(`  done in ${((performance.now() - tg0) / 1000).toFixed(1)} s`);
    // (i): an orchestrator's 2-block token, narrowed through the broker's Attenuate RPC for each sub-agent.
    const orchestrator = await operator.attenuate(await operator.mint(connection, "orchestrator"), BLOCK_2);
    const subAgentsNeeded = ORDER.includes("i")
      ? Math.ceil((WARMUP_1 + WARMUP_64 + ROUNDS * (CALLS_1 + CALLS_64)) / CALLS_PER_SUB_AGENT) + 1
      : 0;
    log(`attenuating ${subAgentsNeeded} sub-agent tokens from the orchestrator's (Attenuate RPC)`);
    const subAgents: string[] = [];
    for (let n = 0; n < subAgentsNeeded; n++) subAgents.push(await operator.attenuate(orchestrator, BLOCK_3));
    let subAgentCalls = 0;
    operator.close();
    if (new Set(fresh).size !== fresh.length) throw new Error("pre-generated tokens are not distinct");
    let freshCursor = 0;

    // ---- the clients ----
    const direct = new Agent({ keepAliveTimeout: 30_000, connections: 32, allowH2: false, connect: { ca, rejectUnauthorized: true } });
    cleanups.push(() => direct.close());
    const relayClient = new ProxyServiceClient(relay.ready.address, credentials.createInsecure());
    const brokerClient = new ProxyServiceClient(broker.address, credentials.createInsecure());
    cleanups.push(async () => (relayClient.close(), brokerClient.close()));
    const directPath = `${PATH}?${QUERY.map((q) => `${q.name}=${q.value}`).join("&")}`;
    let distinct = 0;
    const distinctGet = () => ({ method: "GET", path: `${DISTINCT_PREFIX}${distinct++}` });
    const distinctPost = () => ({ method: "POST", path: `${DISTINCT_PREFIX}${distinct++}/comments`, body: POST_BODY });

    const calls: Record<VariantKey, () => Promise<void>> = {
      a: async () => {
        const res = await direct.request({ origin, path: directPath, method: "GET", headers: { authorization: "Bearer direct-fixed-token" } });
        await res.body.arrayBuffer();
        if (res.statusCode !== 200) throw new Error(`upstream status ${res.statusCode}`);
      },
      b: () => grpcProxyCall(relayClient, connection, warm),
      c: () => grpcProxyCall(brokerClient, connection, warm),
      d: () => {
        const token = fresh[freshCursor++];
        if (token === undefined) throw new Error("ran out of pre-generated tokens");
        return grpcProxyCall(brokerClient, connection, token);
      },
      e: () => grpcProxyCall(relayClient, connection, warm, distinctGet()),
      f: () => grpcProxyCall(brokerClient, connection, agents.one, distinctGet()),
      g: () => grpcProxyCall(brokerClient, connection, warm, distinctGet()),
      h: () => grpcProxyCall(brokerClient, connection, agents.eight, distinctGet()),
      i: () => {
        const token = subAgents[Math.floor(subAgentCalls++ / CALLS_PER_SUB_AGENT)];
        if (token === undefined) throw new Error("ran out of sub-agent tokens");
        return grpcProxyCall(brokerClient, connection, token, distinctGet());
      },
      j: () => grpcProxyCall(relayClient, connection, agents.post, distinctPost()),
      k: () => grpcProxyCall(brokerClient, connection, agents.post, distinctPost()),
    };

    // The process that serves each variant (its CPU is charged to the variant; (a) has none of its own).
    const server: Record<VariantKey, number | undefined> = {
      a: undefined, b: relay.pid, c: broker.pid, d: broker.pid, e: relay.pid, f: broker.pid, g: broker.pid,
      h: broker.pid, i: broker.pid, j: relay.pid, k: broker.pid,
    };

    /**
     * Wait until the broker and the relay are idle (under 10% of a core over a 200 ms window): work a segment left
     * behind (the broker's asynchronous audit writes, GC) must not land in the next segment. Returns the seconds
     * from the call until the start of the first idle window (0 when already idle), so that deferred work can be
     * charged to the segment that caused it.
     */
    const quiesce = async (pids = [broker.pid, relay.pid]): Promise<number> => {
      const t = performance.now();
      for (;;) {
        const w0 = performance.now();
        const c0 = pids.reduce((sum, pid) => sum + cpuSecondsOf(pid), 0);
        await new Promise((r) => setTimeout(r, 200));
        const c1 = pids.reduce((sum, pid) => sum + cpuSecondsOf(pid), 0);
        if (c1 - c0 <= 0.02) return (w0 - t) / 1000;
        if (performance.now() - t > 180_000) throw new Error("the broker did not become idle within 180 s");
      }
    };

    interface Measured extends Summary {
      /** Server CPU per call, ms (all threads of the relay or broker process), including deferred work. */
      cpuMs?: number;
      /** The same for the server's main thread only (the event loop: gRPC, pipeline, undici, audit). */
      mainCpuMs?: number;
      /** Seconds of deferred work after the last response. */
      drain: number;
      /** Calls per second counting the deferred work: calls / (segment + drain). */
      sustained: number;
      /** Calls made. */
      calls: number;
      /** Authorizations the broker answered from its decision cache during the segment (capvault variants). */
      cacheHits?: number;
      /** Native authorizations run off the event loop during the segment (capvault variants). */
      offloaded?: number;
      /** The broker's own mean times of a call and of its admission and upstream steps, ms (capvault variants). */
      steps?: { call: number; admission: number; upstream: number };
    }

    const segment = async (v: VariantKey, n: number, conc: number): Promise<Measured> => {
      const pid = server[v];
      // Read before the idle wait and after the CPU reading, so the scrape's own work is charged to no segment.
      const before = pid === broker.pid ? await brokerCounters() : undefined;
      await quiesce();
      const cpu0 = pid ? cpuSecondsOf(pid) : 0;
      const main0 = pid ? cpuSecondsOf(pid, pid) : 0;
      const s = await drive(() => calls[v](), n, conc);
      const drain = await quiesce();
      if (s.errors) throw new Error(`${VARIANTS[v]} at concurrency ${conc}: ${s.errors} of ${n} calls failed, first: ${s.firstError}`);
      return {
        ...summarize(s),
        ...(pid ? { cpuMs: ((cpuSecondsOf(pid) - cpu0) / n) * 1000, mainCpuMs: ((cpuSecondsOf(pid, pid) - main0) / n) * 1000 } : {}),
        drain,
        sustained: n / (s.seconds + drain),
        calls: n,
        ...(before === undefined ? {} : await brokerCounters().then((after) => ({
          cacheHits: after.hits - before.hits,
          offloaded: after.offloaded - before.offloaded,
          steps: { call: meanMs(before, after, "call"), admission: meanMs(before, after, "admission"), upstream: meanMs(before, after, "upstream") },
        }))),
      };
    };

    // The warm token is "used once before measuring"; then every variant warms up (JIT, pools, caches).
    await calls.c();
    log("warming up every variant");
    for (const v of ORDER) {
      await segment(v, WARMUP_1, 1);
      await segment(v, v === "d" ? Math.ceil(CALLS_64_D / 3) : WARMUP_64, 64);
    }

    // ---- rounds ----
    const results: Record<string, Measured[]> = {};
    for (let r = 0; r < ROUNDS; r++) {
      const order = ORDER.map((_, i) => ORDER[(i + r) % ORDER.length]);
      for (const conc of CONCURRENCIES) {
        for (const v of order) {
          (results[`${v}@${conc}`] ??= []).push(await segment(v, callsFor(v, conc), conc));
        }
      }
      log(`round ${r + 1}/${ROUNDS} done (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
    }
    await quiesce();

    // ---- report ----
    const out: string[] = [];
    const p = (line = "") => out.push(line);
    const cpuModel = cpus()[0]?.model ?? "unknown CPU";
    let commit = "unknown";
    try {
      commit = readFileSync(join(REPO_ROOT, ".git", "HEAD"), "utf8").trim();
      if (commit.startsWith("ref: ")) commit = readFileSync(join(REPO_ROOT, ".git", commit.slice(5)), "utf8").trim().slice(0, 12);
    } catch {
      // not a git checkout
    }
    p(`capvault Proxy bench — ${new Date().toISOString()}, commit ${commit}, node ${process.version}, ${availableParallelism()} cores (${cpuModel})`);
    p(`store: ${storeLabel}; capability runtime: ${RUNTIME}${RUNTIME === "auto" ? " (native when built)" : ""}; decision cache: ${DECISION_CACHE}`);
    p(`${ROUNDS} rounds x (${CALLS_1} calls at concurrency 1, ${CALLS_64} at 64; (d) ${CALLS_64_D} at 64) per variant, rotating order, servers idle before each; medians across rounds`);
    p(`upstream: HTTPS on loopback in its own process, ~70-byte JSON body; client: this process, one gRPC channel per server`);
    p(`(e)-(k): a distinct path on every call, never repeated; (i) a new sub-agent token (Attenuate RPC) every ${CALLS_PER_SUB_AGENT} calls;`);
    p(`(k) POST with a ${POST_BODY.length}-byte JSON body under a body caveat; (c) and (d) repeat one request (the historical workload)`);
    p();
    const built = statSync(join(DIST, "cli", "main.js")).mtime.toISOString();
    p(`build: ${relative(REPO_ROOT, DIST) || "."} (built ${built}); load average ${loadStart.map((l) => l.toFixed(2)).join(" ")} at start`);
    p();
    p(
      `${"variant".padEnd(27)} ${"conc".padStart(4)}  ${"p50 ms".padStart(7)}  ${"p99 ms".padStart(7)}  ${"calls/s".padStart(7)}  ` +
        `${"sustained".padStart(9)}  server CPU ms/call (main thread)`,
    );
    const med = (key: string, f: (s: Measured) => number) => median(results[key].map(f));
    for (const conc of CONCURRENCIES) {
      for (const v of ORDER) {
        const key = `${v}@${conc}`;
        if (!results[key]) continue;
        p(
          `${VARIANTS[v].padEnd(27)} ${String(conc).padStart(4)}  ${fmtMs(med(key, (x) => x.p50))}  ${fmtMs(med(key, (x) => x.p99))}  ` +
            `${fmtRate(med(key, (x) => x.callsPerSecond)).padStart(7)}  ${fmtRate(med(key, (x) => x.sustained)).padStart(9)}  ` +
            (server[v]
              ? `${med(key, (x) => x.cpuMs ?? NaN).toFixed(3).padStart(8)} (${med(key, (x) => x.mainCpuMs ?? NaN).toFixed(3)})`
              : "       -"),
        );
      }
    }
    p(`(calls/s: while calls run; sustained: counting the deferred work (audit writes) the server does after the last`);
    p(` response until it is idle; server CPU: all threads of the relay or broker process, deferred work included,`);
    p(` and its main thread alone)`);
    const hitCounts = ORDER.filter((v) => server[v] === broker.pid).map((v) => {
      const measured = CONCURRENCIES.flatMap((conc) => results[`${v}@${conc}`] ?? []);
      const hits = measured.reduce((sum, m) => sum + (m.cacheHits ?? 0), 0);
      const n = measured.reduce((sum, m) => sum + m.calls, 0);
      return `(${v}) ${hits} of ${n}`;
    });
    if (hitCounts.length) p(`decision cache hits during the rounds (capvault_decision_cache_hits_total): ${hitCounts.join(", ")}`);
    const offloadCounts = ORDER.filter((v) => server[v] === broker.pid).map((v) => {
      const measured = CONCURRENCIES.flatMap((conc) => results[`${v}@${conc}`] ?? []);
      return `(${v}) ${measured.reduce((sum, m) => sum + (m.offloaded ?? 0), 0)}`;
    });
    if (offloadCounts.length) p(`native authorizations run off the event loop during the rounds: ${offloadCounts.join(", ")}`);
    // At concurrency 1 only: at 64 every step's time is mostly its wait for the busy event loop.
    const withSteps = ORDER.filter((v) => server[v] === broker.pid && results[`${v}@1`]?.[0]?.steps);
    if (withSteps.length) {
      p();
      p("the broker's own mean (not median: one slow call moves it) times per call at concurrency 1, ms, from its metrics");
      p(" (call: from the request to its audit event, before the event is stored; admission: capability, canonical");
      p(" request, route, authorization; upstream: to the response head; the rest: credential, response filtering):");
      for (const v of withSteps) {
        const rounds = results[`${v}@1`];
        const step = (k: "call" | "admission" | "upstream") => median(rounds.map((m) => m.steps![k]));
        const rest = step("call") - step("admission") - step("upstream");
        p(`  ${VARIANTS[v].padEnd(26)}  call ${step("call").toFixed(3)}   admission ${step("admission").toFixed(3)}   upstream ${step("upstream").toFixed(3)}   rest ${rest.toFixed(3)}`);
      }
    }
    const has = (...keys: string[]) => keys.every((k) => results[k]);
    const ratio = (num: string, den: string, f: (s: Measured) => number) => med(num, f) / med(den, f);
    const perRound = (num: string, den: string, f: (s: Measured) => number) => {
      const ratios = results[num].map((s, i) => f(s) / f(results[den][i]));
      return `(per round ${Math.min(...ratios).toFixed(2)}-${Math.max(...ratios).toFixed(2)})`;
    };
    const p50 = (s: Measured) => s.p50;
    const rate = (s: Measured) => s.callsPerSecond;
    const sustained = (s: Measured) => s.sustained;
    const verdict = (ok: boolean) => (ok ? "meets" : "MISSES");
    p();
    const line = (label: string, value: number, target?: { max?: number; min?: number }, extra = "") => {
      const verdictText = target
        ? `${verdict(target.max !== undefined ? value <= target.max : value >= (target.min ?? 0))} target ${target.max !== undefined ? `<= ${target.max.toFixed(2)}` : `>= ${target.min!.toFixed(2)}`}`
        : "";
      p(`${label.padEnd(52)} ${value.toFixed(2).padStart(5)}  ${verdictText.padEnd(22)} ${extra}`.trimEnd());
    };
    const cpu = (s: Measured) => s.cpuMs ?? NaN;
    const mainCpu = (s: Measured) => s.mainCpuMs ?? NaN;
    const targets: Partial<Record<VariantKey, { p50?: number; rate?: number; cpu?: number }>> = {
      c: { p50: 1.3, rate: 0.7 },
      d: { p50: 2.5 },
      g: { p50: 1.5, rate: 0.6, cpu: 2 },
      i: { p50: 1.5, rate: 0.6 },
    };
    p("against the floor relay serving the same requests (capvault / relay):");
    for (const v of ORDER) {
      const ref = REFERENCE[v];
      if (!ref || !has(`${v}@1`, `${ref}@1`, `${v}@64`, `${ref}@64`)) continue;
      const t = targets[v] ?? {};
      const name = `${VARIANTS[v]} / ${VARIANTS[ref].replace(/^\(.\) /, "")}`;
      line(`${name}: p50 at c=1`, ratio(`${v}@1`, `${ref}@1`, p50), t.p50 ? { max: t.p50 } : undefined, perRound(`${v}@1`, `${ref}@1`, p50));
      line(`${name}: calls/s at c=64`, ratio(`${v}@64`, `${ref}@64`, rate), t.rate ? { min: t.rate } : undefined, perRound(`${v}@64`, `${ref}@64`, rate));
      if (v === "c") line(`${name}: sustained calls/s at c=64`, ratio(`${v}@64`, `${ref}@64`, sustained), { min: 0.7 }, perRound(`${v}@64`, `${ref}@64`, sustained));
      line(`${name}: server CPU per call at c=64`, ratio(`${v}@64`, `${ref}@64`, cpu), t.cpu ? { max: t.cpu } : undefined,
        `(main thread ${ratio(`${v}@64`, `${ref}@64`, mainCpu).toFixed(2)})`);
    }
    if (has("d@1", "c@1")) p(`p50 (d)/(c) at concurrency 1:                ${ratio("d@1", "c@1", p50).toFixed(2)}  ${perRound("d@1", "c@1", p50)}`);
    if (has("b@1", "a@1")) p(`p50 (b)/(a) at concurrency 1:                ${ratio("b@1", "a@1", p50).toFixed(2)}  (what gRPC and a second process hop cost)`);
    console.log(out.splice(0).join("\n"));

    // ---- RSS flatness ----
    if (!SKIP_RSS) {
      let rssBroker = broker;
      let rssCall = calls.g;
      let rssLabel = storeLabel;
      let rssWarmup = 0;
      if (RSS_STORE !== STORE) {
        // Same ports and callback: the first broker goes away before the second starts.
        const code = await broker.stop();
        if (code !== 0) log(`broker exited with ${code}; its last stderr:\n${broker.stderr().slice(-4000)}`);
        const second = await startCapvault(RSS_STORE);
        second.operator.close();
        const client = new ProxyServiceClient(second.broker.address, credentials.createInsecure());
        cleanups.push(async () => client.close());
        rssBroker = second.broker;
        rssCall = () => grpcProxyCall(client, second.connection, second.warm, distinctGet());
        rssLabel = second.label;
        // The first broker had served the warm-up and every round before its RSS phase; bring this one to a comparable
        // state (JIT, pools, a grown heap) so that the 10k sample is not taken in the middle of start-up growth.
        const warm = await drive(rssCall, RSS_WARMUP, 64);
        if (warm.errors) throw new Error(`RSS warm-up: ${warm.errors} calls failed, first: ${warm.firstError}`);
        rssWarmup = RSS_WARMUP;
        await quiesce([rssBroker.pid]);
      }
      log(`RSS: ${RSS_CALLS} Proxy calls at concurrency 64 (warm token, distinct paths, store: ${rssLabel}), at most ${RSS_MAX_SECONDS} s`);
      const before = rssOf(rssBroker.pid);
      const threadsBefore = threadIdsOf(rssBroker.pid);
      let first = 0;
      let mark = performance.now();
      const s = await drive(
        rssCall,
        RSS_CALLS,
        64,
        (done) => {
          if (done === RSS_FIRST) first = rssOf(rssBroker.pid);
          if (done % 10_000 === 0) {
            log(`  ${done} / ${RSS_CALLS}: RSS ${mib(rssOf(rssBroker.pid))}, ${Math.round(10_000 / ((performance.now() - mark) / 1000))} calls/s`);
            mark = performance.now();
          }
        },
        RSS_MAX_SECONDS,
      );
      const last = rssOf(rssBroker.pid);
      // A recycled capability worker is a new thread: count the threads that were not there before the phase.
      const newThreads = [...threadIdsOf(rssBroker.pid)].filter((t) => !threadsBefore.has(t)).length;
      const drain = await quiesce([rssBroker.pid]);
      const settled = rssOf(rssBroker.pid);
      const done = s.calls;
      p();
      p(`RSS phase store: ${rssLabel}${rssWarmup ? ` (a fresh broker, after ${rssWarmup} warm-up calls at concurrency 64)` : ""}`);
      p(`broker RSS before the RSS phase:   ${mib(before)}`);
      if (done >= RSS_FIRST) {
        const r = last / first;
        p(`broker RSS after ${String(RSS_FIRST / 1000).padStart(3)}k calls:       ${mib(first)}`);
        p(`broker RSS after ${String(Math.floor(done / 1000)).padStart(3)}k calls:       ${mib(last)}  (${mib(settled)} once idle, ${drain.toFixed(1)} s later)`);
        p(`RSS ratio ${Math.floor(done / 1000)}k/${RSS_FIRST / 1000}k:                ${r.toFixed(3)}  ${verdict(Math.abs(r - 1) <= 0.2)} target within 20%`);
        p(`threads started during the phase (recycled workers): ${newThreads}`);
      } else {
        p(`broker RSS after ${done} calls:    ${mib(last)} (fewer than ${RSS_FIRST}: no ratio)`);
      }
      p(
        `(${done} calls at concurrency 64 with the warm token, a distinct path each, in ${s.seconds.toFixed(1)} s = ${Math.round(done / s.seconds)}/s; ` +
          `${s.errors} failed${s.firstError ? `, first: ${s.firstError}` : ""}` +
          `${done < RSS_CALLS ? `; STOPPED at the ${RSS_MAX_SECONDS} s cap, short of ${RSS_CALLS}` : ""})`,
      );
    }
    p();
    p(`total ${((performance.now() - t0) / 1000).toFixed(0)} s; load average ${loadavg().map((l) => l.toFixed(2)).join(" ")} at end`);
    console.log(out.splice(0).join("\n"));

    for (const b of children.filter((c): c is typeof broker => "operatorToken" in c)) {
      const code = await b.stop();
      if (code !== 0) log(`broker exited with ${code}; its last stderr:\n${b.stderr().slice(-4000)}`);
      else if (b.stderr().trim()) log(`broker stderr:\n${b.stderr().slice(-4000)}`);
    }
  } finally {
    await stopAll();
  }
}

await main();
