/**
 * Capability benchmark (not a test): latency of mint, attenuate, first-seen and token-cached authorization of 1-, 3-
 * and 8-block tokens on each capability runtime side by side (the native runtime and biscuit-wasm in the worker pool;
 * "token-cached" sends a distinct path each time, so the decision cache never answers), then RSS after 10k
 * authorizations vs after N (default 25k; `--full` for 100k) on the runtime given by --runtime (default: native when
 * built).
 *
 *   node --import tsx bench/capabilities.ts [--full] [--workers N] [--runtime native|wasm]
 *
 * Latencies are measured on the main thread, one request at a time, so they include the hand-off to the runtime.
 * For the native runtime, the time its own run takes (as it reports it, without the call from JavaScript) is printed
 * too: the figure to compare when the Rust side changes (its allocator, biscuit-auth, native/src/lib.rs).
 */
import { availableParallelism, loadavg } from "node:os";
import { Capabilities, type CapabilityRuntime } from "../src/capabilities/capabilities.js";
import { loadNativeBiscuit } from "../src/capabilities/binding/native-loader.js";
import { generateRootKey, toPublicKey } from "../src/capabilities/root-keys.js";
import type { AccessRequest } from "../src/capabilities/vocabulary.js";

const args = process.argv.slice(2);
const FULL = args.includes("--full");
const WORKERS = Number(args[args.indexOf("--workers") + 1]) || Math.min(2, availableParallelism());
const RSS_TOTAL = FULL ? 100_000 : 25_000;
const RSS_FIRST = 10_000;

const RSS_RUNTIME = args.includes("--runtime") ? (args[args.indexOf("--runtime") + 1] as CapabilityRuntime) : "auto";

const rootKey = generateRootKey(1);
const publicKeys = [toPublicKey(rootKey)];
const caps = new Capabilities({ workers: WORKERS, runtime: RSS_RUNTIME });
const native = loadNativeBiscuit() ? new Capabilities({ workers: 1, runtime: "native" }) : undefined;
const wasm = new Capabilities({ workers: WORKERS, runtime: "wasm" });
/** The native runtime's own run times (ms) of inline authorizations, while this is set. */
let nativeRuns: number[] | undefined;
const binding = loadNativeBiscuit();
if (binding) {
  const authorizeSync = binding.authorizeSync.bind(binding);
  binding.authorizeSync = (...args) => {
    const outcome = authorizeSync(...args);
    nativeRuns?.push((JSON.parse(outcome) as { us: number }).us / 1000);
    return outcome;
  };
}
let distinctPath = 0;
const distinctRequest = (): AccessRequest => ({ ...request, path: `/repos/acme/widgets/issues/${distinctPath++}` });
const request: AccessRequest = {
  tenant: "acme",
  connection: "conn-github-1",
  provider: "github",
  host: "api.github.com",
  method: "GET",
  path: "/repos/acme/widgets/issues/42",
  query: [{ name: "state", value: "open" }],
};

function stats(samples: number[]): { median: number; p99: number } {
  const s = [...samples].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))];
  return { median: at(0.5), p99: at(0.99) };
}

async function time<T>(samples: number[], f: () => Promise<T>): Promise<T> {
  const t0 = performance.now();
  const out = await f();
  samples.push(performance.now() - t0);
  return out;
}

function row(name: string, n: number, samples: number[], extra = ""): void {
  const { median, p99 } = stats(samples);
  console.log(`${name.padEnd(40)} n=${String(n).padStart(5)}  median ${median.toFixed(3).padStart(7)} ms  p99 ${p99.toFixed(3).padStart(7)} ms${extra}`);
}

async function mintToken(): Promise<string> {
  return (
    await caps.mint({
      rootKey,
      tenant: "acme",
      subject: "agent-7",
      grants: [{ connection: "conn-github-1", method: "GET", pathPrefix: "/repos/acme/" }],
      ttlSeconds: 3600,
    })
  ).token;
}

/** A token with `blocks` blocks: the authority block plus (blocks - 1) restrictions that all allow the request. */
async function tokenWithBlocks(blocks: number): Promise<string> {
  let t = await mintToken();
  const restrictions = [
    { pathPrefix: "/repos/acme/widgets/" },
    { ttlSeconds: 1800 },
    { methods: ["GET", "HEAD"] },
    { connections: ["conn-github-1"] },
    { query: [{ name: "state", values: ["open", "closed"] }] },
    { checks: ['check if host("api.github.com")'] },
    { pathPrefix: "/repos/acme/widgets/issues/" },
  ];
  for (let i = 0; i < blocks - 1; i++) t = (await caps.attenuate(t, restrictions[i % restrictions.length], publicKeys)).token;
  return t;
}

async function main(): Promise<void> {
  const started = performance.now();
  await caps.ready();
  console.log(
    `capvault capability bench: ${WORKERS} workers, node ${process.version}, ${availableParallelism()} cores, ` +
      `load average ${loadavg()[0].toFixed(2)} at start`,
  );
  // warm-up
  for (let i = 0; i < 100; i++) await caps.authorize(await mintToken(), request, { publicKeys });

  const mintSamples: number[] = [];
  for (let i = 0; i < 300; i++) await time(mintSamples, mintToken);
  row("mint", 300, mintSamples);

  const base = await mintToken();
  const attSamples: number[] = [];
  for (let i = 0; i < 300; i++) await time(attSamples, () => caps.attenuate(base, { pathPrefix: "/repos/acme/widgets/" }, publicKeys));
  row("attenuate (append 1 block)", 300, attSamples);

  const runtimes: Array<[string, Capabilities]> = [...(native ? [["native", native] as [string, Capabilities]] : []), ["wasm", wasm]];
  for (const [, c] of runtimes) {
    await c.ready();
    for (let i = 0; i < 100; i++) await c.authorize(await mintToken(), distinctRequest(), { publicKeys });
  }
  for (const blocks of [1, 3, 8]) {
    const medians: Record<string, { first: number; cached: number }> = {};
    const fresh: string[] = [];
    for (let i = 0; i < 150 * runtimes.length; i++) fresh.push(await tokenWithBlocks(blocks));
    // Interleaved: each runtime gets every other fresh token, and the token-cached calls alternate.
    const first: Record<string, number[]> = {};
    const cached: Record<string, number[]> = {};
    for (let i = 0; i < fresh.length; i++) {
      const [name, c] = runtimes[i % runtimes.length];
      const d = await time((first[name] ??= []), () => c.authorize(fresh[i], distinctRequest(), { publicKeys }));
      if (!d.allowed) throw new Error(`bench token denied: ${d.reason}`);
    }
    const runs: number[] = (nativeRuns = []);
    for (let i = 0; i < 500 * runtimes.length; i++) {
      const [name, c] = runtimes[i % runtimes.length];
      await time((cached[name] ??= []), () => c.authorize(fresh[0], distinctRequest(), { publicKeys }));
    }
    nativeRuns = undefined;
    for (const [name] of runtimes) {
      medians[name] = { first: stats(first[name]).median, cached: stats(cached[name]).median };
    }
    for (const [name] of runtimes) {
      const ratio = (k: "first" | "cached") => (native && name === "native" ? `   native/wasm ${(medians.native[k] / medians.wasm[k]).toFixed(2)}` : "");
      row(`authorize ${blocks}-block, first seen (${name})`, first[name].length, first[name], ratio("first"));
      row(`authorize ${blocks}-block, token cached (${name})`, cached[name].length, cached[name], ratio("cached"));
      if (name === "native" && runs.length) row(`  of which the native run itself`, runs.length, runs);
    }
  }
  await Promise.all([native?.close(), wasm.close()]);

  // RSS: a mix of 1/3/8-block tokens, 600 distinct (a cache of 128 per worker: mostly first-seen), 8 in flight.
  const distinct: string[] = [];
  for (let i = 0; i < 600; i++) distinct.push(await tokenWithBlocks([1, 3, 3, 8][i % 4]));
  // RSS is sampled every 1000 authorizations; a worker being replaced briefly doubles, so each figure is the median
  // of the samples around that point (8k-12k, and the last five).
  let done = 0;
  const samples: Array<{ at: number; rss: number }> = [];
  const t0 = performance.now();
  const lane = async () => {
    while (done < RSS_TOTAL) {
      const i = done++;
      await caps.authorize(distinct[i % distinct.length], distinctRequest(), { publicKeys });
      if ((i + 1) % 1000 === 0) samples.push({ at: i + 1, rss: process.memoryUsage().rss });
    }
  };
  await Promise.all(Array.from({ length: 8 }, lane));
  const seconds = (performance.now() - t0) / 1000;
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const rssFirst = median(samples.filter((x) => x.at >= RSS_FIRST - 2000 && x.at <= RSS_FIRST + 2000).map((x) => x.rss));
  const rssLast = median(samples.slice(-5).map((x) => x.rss));
  const s = caps.stats();
  console.log(`RSS phase runtime: ${caps.runtime}`);
  console.log(`throughput (8 in flight, mixed)  ${Math.round(RSS_TOTAL / seconds)} authorizations/s`);
  console.log(`RSS around ${RSS_FIRST / 1000}k authorizations       ${(rssFirst / 2 ** 20).toFixed(1)} MiB`);
  console.log(`RSS around ${RSS_TOTAL / 1000}k authorizations      ${(rssLast / 2 ** 20).toFixed(1)} MiB`);
  console.log(`RSS ratio                         ${(rssLast / rssFirst).toFixed(3)} (target within 1.20)`);
  console.log(`workers started ${s.started}, replaced ${s.replaced}, crashed ${s.crashed}; wasm memory now ${s.memoryBytes.map((b) => `${(b / 2 ** 20).toFixed(1)} MiB`).join(", ")}`);
  console.log(`total ${((performance.now() - started) / 1000).toFixed(1)} s, load average ${loadavg()[0].toFixed(2)} at end`);
  await caps.close();
}

await main();
