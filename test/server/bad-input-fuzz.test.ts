import { Client, credentials, Metadata, status, type ServiceDefinition, type StatusObject } from "@grpc/grpc-js";
import { loadPackageDefinition } from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { protoPath } from "grpc-health-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readErrorDetails } from "../../src/errors/grpc-status.js";
import { SERVICES } from "../../src/server/grpc-server.js";
import { startTestBroker, type TestBroker } from "../support/broker-harness.js";

/**
 * A bounded, seeded fuzz of every RPC of every capvault service against a real broker (FerretDB, oidc-provider, an
 * HTTPS upstream): random bytes, valid requests with mutated fields, byte-mutated encodings, mutated capability
 * tokens and oversized metadata. Every call must end with a status before its deadline; bad input must never be
 * answered UNKNOWN or INTERNAL, and every capvault answer carries a stable reason; the broker keeps serving and a
 * valid call works afterwards.
 *
 * Reproduce a run with FUZZ_SEED=<seed printed by the run>; FUZZ_ROUNDS scales the number of inputs per RPC.
 */

const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) >>> 0 : (Math.random() * 2 ** 32) >>> 0;
const ROUNDS = Number(process.env.FUZZ_ROUNDS ?? 100);
/** Each call's deadline; a call without a status by then (plus slack) is a hang. */
const DEADLINE_MS = 4_000;
/** Calls in flight at once. */
const CONCURRENCY = 6;

/** sfc32: a small, fast, seedable PRNG (reproducible across Node versions, unlike Math.random). */
function prng(seed: number) {
  let a = 0x9e3779b9,
    b = 0x243f6a88,
    c = 0xb7e15162,
    d = seed >>> 0;
  const next = () => {
    a >>>= 0;
    b >>>= 0;
    c >>>= 0;
    d >>>= 0;
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296;
  };
  for (let i = 0; i < 16; i++) next();
  const int = (n: number) => Math.floor(next() * n);
  return {
    next,
    int,
    chance: (p: number) => next() < p,
    pick: <T>(xs: readonly T[]): T => xs[int(xs.length)],
    bytes(n: number): Buffer {
      const out = Buffer.alloc(n);
      for (let i = 0; i < n; i++) out[i] = int(256);
      return out;
    },
  };
}
type Rng = ReturnType<typeof prng>;

type Method = ServiceDefinition[string] & { path: string; originalName?: string };

/** One fuzz case: what is sent, and how to describe it when it fails. */
interface Case {
  method: Method;
  /** Encoded request frames (one for unary and server-streaming RPCs). */
  frames: Buffer[];
  metadata: Metadata;
  kind: string;
  /** An oversized-metadata case runs on a client of its own (its connection may be torn down). */
  isolated?: boolean;
}

interface Outcome {
  code: number;
  details: string;
  metadata?: Metadata;
  hang?: boolean;
  messages: number;
}

const identity = (b: Buffer) => b;
const DATA_BOUND = new Set(["/capvault.v1.AdminService/VerifyAudit"]);
const isStreamingTail = (m: Method) => m.responseStream && !m.requestStream;

/** Strings that reach validation, Datalog, MongoDB queries, URLs and headers in interesting ways. */
const NASTY = [
  "",
  " ",
  "\u0000",
  "acme\u0000other",
  "$where",
  "$gt",
  "{\"$ne\":null}",
  "../../etc/passwd",
  "/",
  "//evil.example/x",
  "/%2e%2e/%2f",
  "http://169.254.169.254/latest",
  "GET",
  "get",
  "G E T",
  "CONNECT",
  "\r\nx-injected: 1",
  "é",
  "\ud800",
  "😀",
  "a\"), allow if true; //",
  "check if true",
  "allow if true",
  "x".repeat(5000),
  "-1",
  "9".repeat(40),
];

function randomString(r: Rng, dictionary: readonly string[]): string {
  switch (r.int(5)) {
    case 4:
      return mutateToken(r.pick(dictionary), r);
    case 0:
      return r.pick(NASTY);
    case 1:
      return r.pick(dictionary);
    case 2:
      return r.bytes(r.int(40)).toString("latin1");
    default:
      return Buffer.from(r.bytes(r.int(60))).toString("base64url");
  }
}

/** Replace some leaves of a valid request object with random values of the same type. */
function mutateFields(value: unknown, r: Rng, dictionary: readonly string[], depth = 0): unknown {
  if (typeof value === "string") return r.chance(0.5) ? randomString(r, dictionary) : value;
  if (typeof value === "number") return r.chance(0.5) ? r.pick([0, -1, 1, 2 ** 31 - 1, 2 ** 32 - 1, Number.MAX_SAFE_INTEGER, r.int(1e6)]) : value;
  if (typeof value === "boolean") return r.chance(0.5) ? !value : value;
  if (Buffer.isBuffer(value)) return r.chance(0.5) ? r.bytes(r.int(300)) : value;
  if (value instanceof Date) return r.chance(0.5) ? new Date(r.pick([0, -8.64e15, 8.64e15, Date.now() - 1e9, Date.now() + 1e12])) : value;
  if (Array.isArray(value)) {
    const out = value.map((v) => mutateFields(v, r, dictionary, depth + 1));
    if (value.length && r.chance(0.3)) for (let i = r.int(50); i > 0; i--) out.push(mutateFields(value[0], r, dictionary, depth + 1));
    if (r.chance(0.2)) out.length = 0;
    return out;
  }
  if (value && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = depth > 4 ? v : mutateFields(v, r, dictionary, depth + 1);
    return out;
  }
  return value;
}

/** Byte-level mutations of an encoding: truncate, flip, insert, duplicate, splice in random bytes. */
function mutateBytes(bytes: Buffer, r: Rng): Buffer {
  let b = Buffer.from(bytes);
  for (let n = 1 + r.int(4); n > 0; n--) {
    const at = b.length ? r.int(b.length) : 0;
    switch (r.int(6)) {
      case 0:
        b = b.subarray(0, at);
        break;
      case 1:
        if (b.length) b[at] ^= 1 << r.int(8);
        break;
      case 2:
        b = Buffer.concat([b.subarray(0, at), r.bytes(1 + r.int(8)), b.subarray(at)]);
        break;
      case 3:
        b = Buffer.concat([b, b]);
        break;
      case 4:
        if (b.length) b[at] = r.pick([0x00, 0x7f, 0x80, 0xff, 0x0a, 0x12, 0x1a, 0x22]);
        break;
      default:
        // A length-delimited field claiming far more bytes than follow.
        b = Buffer.concat([b.subarray(0, at), Buffer.from([0x0a, 0xff, 0xff, 0xff, 0x0f]), b.subarray(at)]);
    }
  }
  return b;
}

/** A capability token damaged the ways a broken client or an attacker would damage one. */
function mutateToken(token: string, r: Rng): string {
  switch (r.int(7)) {
    case 0:
      return token.slice(0, r.int(token.length));
    case 1: {
      const i = r.int(token.length);
      const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
      return token.slice(0, i) + r.pick([...alphabet]) + token.slice(i + 1);
    }
    case 2: {
      const raw = Buffer.from(token, "base64url");
      if (raw.length) raw[r.int(raw.length)] ^= 1 << r.int(8);
      return raw.toString("base64url");
    }
    case 3:
      return token + randomString(r, NASTY).replace(/[^A-Za-z0-9_-]/g, "");
    case 4:
      return r.bytes(r.int(400)).toString("base64url");
    case 5:
      return Buffer.from(token, "base64url").subarray(0, r.int(token.length)).toString("base64url");
    default:
      return mutateBytes(Buffer.from(token, "base64url"), r).toString("base64url");
  }
}

function authorization(r: Rng, tokens: { operator: string; agent: string }): { md: Metadata; kind: string; isolated?: boolean } {
  const md = new Metadata();
  const base = r.pick([tokens.operator, tokens.agent]);
  switch (r.int(10)) {
    case 0:
      return { md, kind: "no authorization" };
    case 8:
    case 9:
    case 1:
      md.set("authorization", `Bearer ${base}`);
      return { md, kind: "valid token" };
    case 2:
    case 3:
      md.set("authorization", `Bearer ${mutateToken(base, r)}`);
      return { md, kind: "mutated token" };
    case 4:
      md.set("authorization", r.pick([base, `Basic ${base}`, "Bearer", "Bearer ", `Bearer ${base} extra`, `bearer   ${base}`]));
      return { md, kind: "malformed authorization header" };
    case 5:
      // HTTP/2 in Node refuses to send two authorization fields; a list in one field is what a client can send.
      md.set("authorization", `Bearer ${base}, Bearer ${mutateToken(base, r)}`);
      return { md, kind: "two authorization values" };
    case 6:
      md.set("authorization", `Bearer ${"A".repeat(r.pick([4096, 7000, 60_000]))}`);
      return { md, kind: "huge token", isolated: true };
    default:
      md.set("authorization", `Bearer ${base}`);
      for (let i = r.int(4); i >= 0; i--) md.add(`x-fuzz-${i}`, "v".repeat(r.pick([100, 9000, 40_000, 100_000])));
      return { md, kind: "oversized metadata", isolated: true };
  }
}

/** A valid request object for every RPC (camelCase, as the generated encoders take them). */
function samples(ctx: { tenant: string; connection: string; victimConnection: string; agentToken: string; revocationIds: string[] }): Record<string, unknown> {
  const http = { connection: ctx.connection, method: "GET", path: "/repos/acme/widgets", query: [{ name: "state", value: "open" }], headers: [{ name: "accept", value: "application/json" }], body: Buffer.from("{}") };
  return {
    Mint: { tenant: ctx.tenant, subject: "agent-9", grants: [{ connection: ctx.connection, method: "GET", pathPrefix: "/repos/acme/" }], ttl: { seconds: 600, nanos: 0 }, operator: false },
    Attenuate: {
      token: ctx.agentToken,
      restriction: { connections: [ctx.connection], methods: ["GET"], pathPrefix: "/repos/acme/widgets/", ttl: { seconds: 60, nanos: 0 }, expiresAt: new Date(Date.now() + 60_000), query: [{ name: "state", values: ["open"] }], body: [], checks: ["check if time($t), $t < 2100-01-01T00:00:00Z"], approvalMethods: ["DELETE"] },
    },
    Inspect: { token: ctx.agentToken },
    Authorize: { token: ctx.agentToken, request: http },
    Revoke: { revocationIds: ctx.revocationIds, reason: "fuzz" },
    ListPublicKeys: {},
    BeginConnect: { tenant: ctx.tenant, user: "fuzz-user", provider: "gh", scopes: ["openid"] },
    ListConnections: { tenant: ctx.tenant, user: "alice" },
    GetConnection: { tenant: ctx.tenant, connectionId: ctx.connection },
    Disconnect: { tenant: ctx.tenant, connectionId: ctx.victimConnection },
    ImportConnections: [
      {
        tenant: ctx.tenant,
        connections: [{ line: 1, user: "fuzz", provider: "gh", account: "fuzz-account", accessToken: "fuzz-access-token", refreshToken: "", expiresAt: undefined, scopes: [] }],
      },
      { tenant: ctx.tenant, connections: [{ line: 2, user: "fuzz", provider: "gh", account: "fuzz-account-2", accessToken: "fuzz-access-token-2", refreshToken: "r", expiresAt: undefined, scopes: ["a"] }] },
    ],
    Proxy: { request: http },
    ProxyStream: [{ head: http }, { bodyChunk: Buffer.from("chunk") }],
    GetKeyStatus: {},
    ListAuditEvents: { tenant: ctx.tenant, afterSequence: 0, limit: 10 },
    TailAuditEvents: { tenant: ctx.tenant, afterSequence: 0 },
    VerifyAudit: { tenant: ctx.tenant },
    ListApprovals: { tenant: ctx.tenant, state: "pending", limit: 10 },
    GetApproval: { tenant: ctx.tenant, id: "apr_AAAAAAAAAAAAAAAAAAAAAA" },
    Decide: { tenant: ctx.tenant, id: "apr_AAAAAAAAAAAAAAAAAAAAAA", approve: true, note: "fuzz" },
    WaitApproval: { id: "apr_AAAAAAAAAAAAAAAAAAAAAA" },
  };
}

/** Every RPC of every capvault service, by its method name. */
function allMethods(): [string, Method][] {
  const out: [string, Method][] = [];
  for (const svc of Object.values(SERVICES)) {
    for (const [, m] of Object.entries(svc.definition as unknown as ServiceDefinition)) out.push([(m as Method).path.split("/").pop()!, m as Method]);
  }
  return out;
}

function encode(method: Method, value: unknown): Buffer | undefined {
  try {
    return method.requestSerialize(value as never);
  } catch {
    return undefined; // a mutated field the encoder cannot write: the case falls back to byte mutations
  }
}

/** Send one case on a raw client and wait for its status (or for the watchdog: a hang). */
function send(client: Client, c: Case): Promise<Outcome> {
  return new Promise((resolve) => {
    let messages = 0;
    let settled = false;
    const done = (o: Omit<Outcome, "messages">) => {
      if (settled) return;
      settled = true;
      clearTimeout(watchdog);
      clearTimeout(tailStop);
      resolve({ ...o, messages });
    };
    const watchdog = setTimeout(() => done({ code: -1, details: "no status before the deadline", hang: true }), DEADLINE_MS + 3_000);
    let tailStop: NodeJS.Timeout | undefined;
    const options = { deadline: Date.now() + DEADLINE_MS };
    const onStatus = (s: StatusObject) => done({ code: s.code, details: s.details, metadata: s.metadata });
    const m = c.method;
    if (!m.requestStream && !m.responseStream) {
      client.makeUnaryRequest(m.path, identity, identity, c.frames[0], c.metadata, options, (err) => {
        if (err) done({ code: err.code, details: err.details, metadata: err.metadata });
        else {
          messages = 1;
          done({ code: status.OK, details: "" });
        }
      });
      return;
    }
    const call = m.requestStream
      ? client.makeBidiStreamRequest(m.path, identity, identity, c.metadata, options)
      : client.makeServerStreamRequest(m.path, identity, identity, c.frames[0], c.metadata, options);
    call.on("data", () => messages++);
    call.on("error", () => {});
    call.on("status", onStatus);
    if (m.requestStream) {
      const w = call as unknown as { write(b: Buffer): void; end(): void };
      for (const f of c.frames) w.write(f);
      w.end();
    }
    // A tail that was accepted streams until it is cancelled: that is its job, not a hang.
    if (isStreamingTail(m)) tailStop = setTimeout(() => (call as unknown as { cancel(): void }).cancel(), 1_500);
  });
}

/** What is wrong with an outcome, or undefined. */
function problem(c: Case, o: Outcome): string | undefined {
  if (o.hang) return "no status before the deadline (hang)";
  // The broker honouring the caller's deadline is a clear answer for work that grows with the stored data (verifying
  // the whole audit chain the fuzz itself keeps growing); for anything else it means the input made the broker stall.
  if (o.code === status.DEADLINE_EXCEEDED && !isStreamingTail(c.method) && !DATA_BOUND.has(c.method.path)) {
    return "DEADLINE_EXCEEDED (the broker did not answer in time)";
  }
  if (o.code === status.OK) return undefined;
  if (o.code === status.CANCELLED && isStreamingTail(c.method)) return undefined; // the test cancelled a running tail
  // The transport's own refusals carry no capvault details: oversized messages and metadata.
  if (o.code === status.RESOURCE_EXHAUSTED) return undefined;
  // A header field over 64 KiB is more than Node's HTTP/2 (nghttp2's HPACK decoder) accepts: the connection is closed
  // with COMPRESSION_ERROR, before any handler runs, and grpc-js reports it as INTERNAL on that connection only.
  if (c.isolated && (o.code === status.UNAVAILABLE || (o.code === status.INTERNAL && /RST_STREAM with code 9\b/.test(o.details)))) return undefined;
  if (o.code === status.UNKNOWN || o.code === status.INTERNAL) return `answered ${status[o.code]}: ${o.details}`;
  const details = readErrorDetails({ code: o.code, details: o.details, metadata: o.metadata });
  if (details.domain !== "capvault" || !details.reason) return `answered ${status[o.code]} without a capvault reason: ${o.details}`;
  return undefined;
}

/** grpc.health.v1 as an independent client sees it. */
function healthStatus(address: string): Promise<string> {
  const pkg = loadPackageDefinition(loadSync(protoPath, { keepCase: true, enums: String })) as any;
  const client = new pkg.grpc.health.v1.Health(address, credentials.createInsecure());
  return new Promise((resolve, reject) =>
    client.check({ service: "" }, { deadline: Date.now() + 5_000 }, (err: Error | null, res: { status: string }) => {
      client.close();
      err ? reject(err) : resolve(res.status);
    }),
  );
}

describe(`bad input to every RPC (FUZZ_SEED=${SEED})`, () => {
  let t: TestBroker;
  let connection: string;
  let agentToken: string;
  /** Revocation ids of a token minted only to be revoked by the fuzz (the agent token stays usable throughout). */
  let victimIds: string[];
  /** A connection the fuzz may disconnect (the first one stays connected throughout). */
  let victimConnection: string;

  beforeAll(async () => {
    console.log(`[bad-input fuzz] FUZZ_SEED=${SEED} FUZZ_ROUNDS=${ROUNDS}`);
    t = await startTestBroker();
    connection = await t.connectAccount("alice");
    const minted = await t.mint([{ connection, method: "GET", pathPrefix: "/repos/acme/" }]);
    agentToken = minted.token;
    victimConnection = await t.connectAccount("victim");
    victimIds = (await t.mint([{ connection, method: "GET", pathPrefix: "/" }], 600, "victim")).revocationIds;
  });
  afterAll(async () => t?.close());

  it("every call ends with a clear status before its deadline, and the broker keeps serving", { timeout: 110_000 }, async () => {
    const r = prng(SEED);
    const methods = allMethods();
    expect(methods.map(([n]) => n).sort()).toHaveLength(21);
    const sample = samples({ tenant: t.tenant, connection, victimConnection, agentToken, revocationIds: victimIds });
    const dictionary = [t.tenant, victimConnection, agentToken, "gh", "alice", "GET", "POST", "/repos/acme/", ...victimIds];
    const tokens = { operator: t.operatorToken, agent: agentToken };

    const cases: Case[] = [];
    for (const [name, method] of methods) {
      const valid = sample[name];
      if (valid === undefined) throw new Error(`no sample request for ${name}: add one`);
      const validFrames = (Array.isArray(valid) ? valid : [valid]).map((v) => encode(method, v)!);
      for (let i = 0; i < ROUNDS; i++) {
        const auth = authorization(r, tokens);
        let frames: Buffer[];
        let kind: string;
        switch (r.int(4)) {
          case 0:
            frames = validFrames.map(() => r.bytes(r.int(r.chance(0.1) ? 5000 : 64)));
            kind = "random bytes";
            break;
          case 1:
            frames = validFrames.map((f) => mutateBytes(f, r));
            kind = "byte-mutated request";
            break;
          case 2: {
            const vs = Array.isArray(valid) ? valid : [valid];
            frames = vs.map((v, j) => encode(method, mutateFields(v, r, dictionary)) ?? mutateBytes(validFrames[j], r));
            kind = "field-mutated request";
            break;
          }
          default:
            frames = validFrames;
            kind = "valid request";
        }
        if (method.requestStream && r.chance(0.3)) frames = r.chance(0.5) ? [] : [...frames, ...frames.map((f) => mutateBytes(f, r))];
        cases.push({ method, frames, metadata: auth.md, kind: `${kind}, ${auth.kind}`, isolated: auth.isolated });
      }
    }
    // Oversized request messages over the configured limit, for every RPC.
    for (const [, method] of methods) {
      const md = new Metadata();
      md.set("authorization", `Bearer ${t.operatorToken}`);
      cases.push({ method, frames: [Buffer.concat([Buffer.from([0x0a, 0x80, 0x80, 0x80, 0x03]), Buffer.alloc(5 << 20, 0x41)])], metadata: md, kind: "message over grpc.maxMessageBytes" });
    }

    // Seeded shuffle: RPCs interleave, as they would from many agents.
    for (let i = cases.length - 1; i > 0; i--) {
      const j = r.int(i + 1);
      [cases[i], cases[j]] = [cases[j], cases[i]];
    }

    const shared = new Client(t.address, credentials.createInsecure(), { "grpc.max_send_message_length": -1 });
    const failures: string[] = [];
    const tally = new Map<string, number>();
    const started = Date.now();
    let next = 0;
    const worker = async () => {
      while (next < cases.length) {
        const c = cases[next++];
        // grpc-js shares connections between clients unless told not to: an isolated case gets a connection of its own.
        const client = c.isolated
          ? new Client(t.address, credentials.createInsecure(), { "grpc.max_send_message_length": -1, "grpc.use_local_subchannel_pool": 1 })
          : shared;
        const o = await send(client, c);
        if (c.isolated) client.close();
        const reason =
          o.code === status.OK ? "OK" : (readErrorDetails({ code: o.code, details: o.details, metadata: o.metadata }).reason ?? `${status[o.code]} (transport)`);
        tally.set(reason, (tally.get(reason) ?? 0) + 1);
        const p = problem(c, o);
        if (p) {
          const hex = c.frames.map((f) => f.subarray(0, 48).toString("hex")).join(" | ");
          failures.push(`${c.method.path} [${c.kind}] ${p}\n    frames (first 48 bytes): ${hex || "(none)"}`);
        }
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    shared.close();
    console.log(`[bad-input fuzz] ${cases.length} calls in ${Date.now() - started} ms, ${failures.length} problems (FUZZ_SEED=${SEED})`);
    console.log(`[bad-input fuzz] answers: ${[...tally].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(", ")}`);

    expect(failures, `reproduce with FUZZ_SEED=${SEED}`).toEqual([]);
    expect(t.logs.filter((l) => l.includes('"rpc failed"'))).toEqual([]);

    // Still serving: health, and a valid Proxy call on a fresh connection with a fresh token (the fuzz may have
    // disconnected the first connection or revoked the first token, validly).
    expect(await healthStatus(t.address)).toBe("SERVING");
    const fresh = await t.connectAccount("after-fuzz");
    const agent = t.client((await t.mint([{ connection: fresh, method: "GET", pathPrefix: "/repos/acme/" }])).token);
    const res = await agent.fetch(fresh, { path: "/repos/acme/widgets" });
    expect(res.status).toBe(200);
  });
});
