/**
 * `npm run demo`: capvault end to end on this machine, nothing to set up and no accounts anywhere.
 *
 * Starts the real broker (`node dist/cli/main.js dev`, a child process), a demo OAuth provider (oidc-provider) and a
 * GitHub-like demo API (HTTPS on localhost), then walks through one story: alice connects her account, an
 * orchestrator agent gets a capability, narrows it for a sub-agent, calls go through the Proxy (allowed, denied,
 * revoked), and the audit trail is read back and verified. See docs/demo.md.
 */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { status as grpcStatus } from "@grpc/grpc-js";
import * as clientLibrary from "../../src/client/index.js";
import { CapvaultClientError, connect, type CapvaultClient, type FetchResponse } from "../../src/client/index.js";
import type { AuditEvent } from "../../src/gen/capvault/v1/admin.js";
import type { InspectResponse, Restriction, Term } from "../../src/gen/capvault/v1/capability.js";
import { connectionStatusToJSON } from "../../src/gen/capvault/v1/connection.js";
import { signInInCode as authorizeInCode } from "../../src/sandbox/sign-in-in-code.js";
import { build, buildNeeded, startBrokerProcess, type BrokerProcess } from "./broker-process.js";
import { SANDBOX_CA_FILE as DEMO_CA_FILE, startSandboxApi as startDemoApi, type SandboxApi as DemoApi } from "../../src/sandbox/sandbox-api.js";
import {
  SANDBOX_ACCOUNT as DEMO_ACCOUNT,
  startSandboxOAuthProvider as startDemoOAuthProvider,
  type SandboxOAuthProvider as DemoOAuthProvider,
} from "../../src/sandbox/sandbox-oauth-provider.js";
import { operator, type Operator } from "./operator.js";
import { decideOnApprovalPage, startApprovalInbox } from "./approval-inbox.js";
import { randomBytes } from "node:crypto";

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
/** The tenant `capvault dev` prints an operator capability for. */
const TENANT = "dev";
const PROVIDER = "demo-github";
const USER = "alice";
const ORCHESTRATOR_PREFIX = "/repos/acme/";
const SUB_AGENT_PREFIX = "/repos/acme/widgets/";
const BRANCHES_PREFIX = "/repos/acme/widgets/branches/";
const startedAt = performance.now();

// ---------------------------------------------------------------------------------------------------------------------
// Output

const color = process.stdout.isTTY && !process.env.NO_COLOR;
const bold = (s: string) => (color ? `\x1b[1m${s}\x1b[0m` : s);
const green = (s: string) => (color ? `\x1b[32m${s}\x1b[0m` : s);
const red = (s: string) => (color ? `\x1b[31m${s}\x1b[0m` : s);
const dim = (s: string) => (color ? `\x1b[2m${s}\x1b[0m` : s);
const WIDTH = 110;

function out(line = ""): void {
  process.stdout.write(`${line}\n`);
}

/** Failure output goes to stderr. */
function fail(line = ""): void {
  process.stderr.write(`${line}\n`);
}

/** A paragraph, wrapped to WIDTH; continuation lines are indented by `hang` more. */
function say(text: string, indent = 2, hang = 0): void {
  let pad = " ".repeat(indent);
  let line = "";
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line && pad.length + line.length + 1 + word.length > WIDTH) {
      out(pad + line);
      pad = " ".repeat(indent + hang);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) out(pad + line);
}

const bullet = (text: string) => say(`- ${text}`, 2, 2);

let stepNumber = 0;
function step(title: string): void {
  stepNumber++;
  out();
  out(bold(`Step ${stepNumber}. ${title}`));
  out(bold("-".repeat(`Step ${stepNumber}. ${title}`.length)));
}

const short = (id: string, n = 12) => (id.length > n ? `${id.slice(0, n)}…` : id);
const secondsSince = (t: number) => ((performance.now() - t) / 1000).toFixed(1);

function termText(t: Term): string {
  if (t.string !== undefined) return JSON.stringify(t.string);
  if (t.integer !== undefined) return String(t.integer);
  if (t.boolean !== undefined) return String(t.boolean);
  if (t.date !== undefined) return t.date.toISOString();
  if (t.bytes !== undefined) return `hex:${Buffer.from(t.bytes).toString("hex")}`;
  return "?";
}

function printBlocks(inspected: InspectResponse, labels: string[]): void {
  for (const b of inspected.blocks) {
    out(`    block ${b.index}: ${labels[b.index] ?? "added by a holder"}   ${dim(`revocation id ${short(b.revocationId, 16)}`)}`);
    for (const f of b.facts) out(`      ${f.name}(${f.terms.map(termText).join(", ")});`);
    for (const c of b.checks) out(`      ${c};`);
  }
}

function printResponse(who: string, res: FetchResponse): void {
  out(`    ${green("ALLOWED")}  HTTP ${res.status}  ${dim(`(${who}; headers passed back: ${Object.keys(res.headers).join(", ") || "none"})`)}`);
  const body = res.text();
  out(`    body: ${body.length > 160 ? `${body.slice(0, 160)}…` : body}`);
}

function printDenied(err: CapvaultClientError): void {
  out(`    ${red("DENIED")}   ${err.reason}  ${dim(`(gRPC ${grpcStatus[err.code] ?? err.code}: ${err.message})`)}`);
}

/** Run a call that must be refused; return the refusal. */
async function refused(call: Promise<unknown>, what: string): Promise<CapvaultClientError> {
  const result = await call.then(
    (ok) => ({ ok }),
    (err: unknown) => ({ err }),
  );
  if ("ok" in result) throw new Error(`${what} was allowed, but the demo expected a refusal`);
  if (!(result.err instanceof CapvaultClientError)) throw result.err;
  return result.err;
}

function expect(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(message);
}

// ---------------------------------------------------------------------------------------------------------------------
// Cleanup: everything started is registered here and stopped in reverse order, on success, failure, Ctrl-C or SIGTERM.

interface Resource {
  name: string;
  stop(): Promise<string | void>;
  /** Synchronous last resort, if the process exits before stop() ran. */
  stopNow?(): void;
}
const resources: Resource[] = [];
let cleaning: Promise<string[]> | undefined;

function cleanUp(): Promise<string[]> {
  cleaning ??= (async () => {
    const notes: string[] = [];
    for (const r of resources.splice(0).reverse()) {
      try {
        const note = await r.stop();
        if (note) notes.push(note);
      } catch (err) {
        notes.push(`${r.name}: could not be stopped cleanly (${(err as Error).message})`);
      }
    }
    return notes;
  })();
  return cleaning;
}

process.on("exit", () => {
  for (const r of resources.reverse()) r.stopNow?.();
});
let interrupted = false;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    interrupted = true;
    out();
    out(`Interrupted (${signal}): stopping everything the demo started…`);
    void cleanUp().then((notes) => {
      for (const n of notes) out(`  ${n}`);
      process.exit(signal === "SIGINT" ? 130 : 143);
    });
  });
}

// ---------------------------------------------------------------------------------------------------------------------
// The story

let broker: BrokerProcess | undefined;
let idp: DemoOAuthProvider | undefined;

async function main(): Promise<void> {
  out(bold("capvault demo: an agent uses alice's account without ever holding her OAuth token"));
  out();

  const reason = buildNeeded(REPO_ROOT);
  if (reason) {
    const t = performance.now();
    out(`Building capvault first (${reason})…`);
    await build(REPO_ROOT, (tsc) =>
      resources.push({
        name: "build",
        stop: async () => void (tsc.exitCode === null && tsc.signalCode === null && tsc.kill("SIGTERM")),
        stopNow: () => void (tsc.exitCode === null && tsc.signalCode === null && tsc.kill("SIGKILL")),
      }),
    );
    out(`Built in ${secondsSince(t)} s.`);
    out();
  }

  // --- The stage: temp folder, demo OAuth provider, demo API, broker ---------------------------------------------------
  const dir = await mkdtemp(join(tmpdir(), "capvault-demo-"));
  resources.push({
    name: "temp folder",
    stop: async () => {
      await rm(dir, { recursive: true, force: true });
      return `temp folder ${dir} removed`;
    },
    stopNow: () => rmSync(dir, { recursive: true, force: true }),
  });
  const providersDir = join(dir, "providers");
  await mkdir(providersDir);

  idp = await startDemoOAuthProvider();
  const provider = idp;
  resources.push({ name: "demo OAuth provider", stop: async () => (await provider.close(), "demo OAuth provider closed") });
  const api: DemoApi = await startDemoApi((token) => provider.lookupAccessToken(token));
  resources.push({ name: "demo API", stop: async () => (await api.close(), "demo API closed") });
  const webhookSecret = randomBytes(24).toString("base64url");
  const inbox = await startApprovalInbox(webhookSecret);
  resources.push({ name: "approval inbox", stop: async () => (await inbox.close(), "approval inbox closed") });

  // The broker learns about the provider from one catalog file; the client secret comes from the environment.
  const providerFile = join(providersDir, `${PROVIDER}.json`);
  await writeFile(
    providerFile,
    JSON.stringify(
      {
        id: PROVIDER,
        displayName: "Demo GitHub",
        issuer: provider.issuer,
        discovery: true,
        defaultScopes: ["openid", "email", "offline_access"],
        pkce: "S256",
        authorizationParams: { prompt: "consent" },
        tokenResponse: "standard",
        tokenEndpointAuthMethod: "client_secret_basic",
        revocation: "rfc7009",
        account: "oidc",
        client: { idEnv: "CAPVAULT_DEMO_CLIENT_ID", secretEnv: "CAPVAULT_DEMO_CLIENT_SECRET" },
        api: {
          baseUrl: api.baseUrl,
          allowedHosts: ["localhost"],
          credentialHeader: { name: "Authorization", scheme: "Bearer" },
          // DEMO ONLY: the API is on loopback and its certificate comes from the demo CA.
          allowPrivateAddresses: true,
          caFile: DEMO_CA_FILE,
        },
      },
      null,
      2,
    ),
  );

  broker = await startBrokerProcess({
    repoRoot: REPO_ROOT,
    providersDir,
    env: {
      CAPVAULT_DEMO_CLIENT_ID: provider.clientId,
      CAPVAULT_DEMO_CLIENT_SECRET: provider.clientSecret,
      CAPVAULT_APPROVAL_WEBHOOK_URL: inbox.url,
      CAPVAULT_APPROVAL_WEBHOOK_SECRET: webhookSecret,
    },
    onSpawn: (child) =>
      resources.push({
        name: "broker",
        stop: async () => {
          const { code, signal } = await child.stop();
          return `broker (pid ${child.pid}) stopped: ${signal ? `killed by ${signal}` : `exit code ${code}`}`;
        },
        stopNow: () => child.killNow(),
      }),
  });
  const b = broker;
  const callbackUrl = `${b.httpUrl}/oauth/callback`;
  await provider.registerClient(callbackUrl);

  out("Setting the stage (everything on 127.0.0.1, stopped and deleted when the demo ends):");
  bullet(`the capvault broker: the real CLI, \`node dist/cli/main.js dev\`, pid ${b.pid}. gRPC on ${b.grpcAddress}, OAuth callbacks at ${callbackUrl}. In-memory store, a key-encryption key generated for this run.`);
  bullet(`a demo OAuth provider (oidc-provider, in this process) at ${provider.issuer}. It has one user, ${DEMO_ACCOUNT}, and capvault registered as a client with the exact callback URL above.`);
  bullet(`a demo API, a small GitHub-like HTTPS server at ${api.baseUrl} (certificate from a demo-only CA). It answers only requests carrying a live access token from the demo provider.`);
  bullet(`the broker was told about the provider by one file, ${providerFile.replace(dir, "<temp>")}; the client secret reached it through an environment variable, never a file or a flag.`);
  bullet(`an approval inbox at ${inbox.url}, standing in for a Slack bot: the broker posts each call held for approval there, signed (HMAC-SHA256) with a secret it got from the environment.`);
  bullet(`the broker printed a dev operator capability for tenant "${TENANT}". In this story you, running the demo, are the operator.`);

  const op = operator(b.grpcAddress, b.operatorToken, TENANT);
  resources.push({ name: "operator channel", stop: async () => op.close() });

  // --- 1. alice connects --------------------------------------------------------------------------------------------------
  step(`${USER} connects her account (OAuth authorization code flow with PKCE)`);
  const begun = await op.beginConnect(USER, PROVIDER);
  const authUrl = new URL(begun.authorizationUrl);
  say(`The operator asks the broker to connect ${USER}'s account (ConnectionService.BeginConnect). The broker creates a pending connection, ${begun.connectionId}, and returns the URL to send ${USER} to:`);
  const q = authUrl.searchParams;
  out(`    ${authUrl.origin}${authUrl.pathname}?response_type=${q.get("response_type")}&client_id=${q.get("client_id")}&scope=${q.get("scope")}`);
  out(`      &code_challenge=${short(q.get("code_challenge") ?? "", 10)}&code_challenge_method=${q.get("code_challenge_method")}&state=${short(q.get("state") ?? "", 10)}&redirect_uri=…`);
  expect(q.get("code_challenge_method") === "S256" && q.get("code_challenge"), "the authorization URL carries no S256 PKCE challenge");
  say(`The PKCE verifier behind that challenge never leaves the broker, and the state works once. In real life ${USER} opens the URL in her browser, signs in and clicks Allow. Here a few lines of code play the browser (they follow the redirects with a cookie jar), and the demo provider signs ${USER} in and records her consent without showing a page.`);
  const signIn = await authorizeInCode(begun.authorizationUrl, callbackUrl);
  say(`The browser went ${signIn.hops.map((h) => h.replace(/[^/]{20,}/g, (seg) => short(seg, 8))).join(" → ")}: the provider sent it back to the broker with a one-time code, which the broker exchanged, with the PKCE verifier and its client secret, for ${USER}'s tokens. It encrypted them and showed ${USER} this page (HTTP ${signIn.status}):`);
  out(`    "${signIn.page}"`);
  expect(signIn.page.includes("is now connected"), `the callback page does not say the account is connected: ${signIn.page}`);
  const conn = (await op.getConnection(begun.connectionId)).connection;
  expect(conn, "GetConnection returned no connection");
  const connection = conn.id;
  out(`    connection ${connection}: ${connectionStatusToJSON(conn.status).replace("CONNECTION_STATUS_", "")}, user ${conn.user}, account ${conn.account || "(unknown)"}, scopes ${conn.scopes.join(" ")}`);
  say(`Only the broker holds ${USER}'s access and refresh tokens. Nobody below ever receives them.`);

  // --- 2. the orchestrator's capability ------------------------------------------------------------------------------------
  step("An orchestrator agent gets a capability");
  const minted = await op.mint(
    "orchestrator",
    [
      { connection, method: "GET", pathPrefix: ORCHESTRATOR_PREFIX },
      { connection, method: "DELETE", pathPrefix: BRANCHES_PREFIX },
    ],
    3600,
  );
  say(`The operator mints a capability for the agent "orchestrator" (CapabilityService.Mint, with the dev operator capability): GET anything under ${ORCHESTRATOR_PREFIX} and DELETE branches under ${BRANCHES_PREFIX}, through ${USER}'s connection, for 1 hour.`);
  out(`    a Biscuit token of ${minted.token.length} characters, expires ${minted.expiresAt?.toISOString()}, root key ${minted.rootKeyId}`);
  say("It says what its holder may do and carries no secret of alice's: the agent could publish it and still not learn her OAuth token.");
  const orchestrator: CapvaultClient = connect(b.grpcAddress, minted.token);
  resources.push({ name: "agent channel", stop: async () => orchestrator.close() });

  // --- 3. attenuation for a sub-agent -------------------------------------------------------------------------------------
  step("The orchestrator narrows its capability for a sub-agent");
  const restriction: Partial<Restriction> = { pathPrefix: SUB_AGENT_PREFIX, ttl: { seconds: 300, nanos: 0 }, approvalMethods: ["DELETE"] };
  say(`The orchestrator hands a sub-agent a narrower token: only paths under ${SUB_AGENT_PREFIX}, only for 5 minutes, and every DELETE held until a person approves it. Narrowing appends a block of checks to the token; a block can only take rights away.`);
  const { token: subToken, how } = await attenuateForSubAgent(orchestrator, minted.token, restriction);
  say(how);
  const sub = orchestrator.withToken(subToken);
  const inspected = await sub.inspect();
  say(`CapabilityService.Inspect shows the sub-agent's token (${subToken.length} characters), block by block:`);
  printBlocks(inspected, ["the authority block, written by the broker at Mint and signed with its root key", "added by the orchestrator"]);
  expect(inspected.blocks.length === 2, `the sub-agent's token has ${inspected.blocks.length} blocks, expected 2`);
  expect(inspected.blocks[1].checks.some((c) => c.includes(SUB_AGENT_PREFIX)), "block 1 has no check on the sub-agent's path prefix");
  say(`Tenant ${inspected.tenant}, subject ${inspected.subject}, expires ${inspected.expiresAt?.toISOString()} (the earliest expiry of all blocks).`);

  // --- 4. an allowed call ----------------------------------------------------------------------------------------------------
  step("The sub-agent reads the widgets' open issues (allowed)");
  const before = api.requests.length;
  out(`    sub-agent → ProxyService.Proxy: GET /repos/acme/widgets/issues?state=open on connection ${connection}`);
  const allowed = await sub.fetch(connection, { path: "/repos/acme/widgets/issues", query: { state: "open" } });
  printResponse("the demo API answered through the broker", allowed);
  expect(allowed.status === 200, `the allowed call returned HTTP ${allowed.status}, expected 200`);
  expect(api.requests.length === before + 1, "the demo API did not receive exactly one request");
  const seen = api.requests[api.requests.length - 1];
  const accessToken = seen.authorization.replace(/^Bearer /, "");
  say(`The broker checked the capability, decrypted ${USER}'s access token and sent the request. The demo API received \`Authorization: Bearer ${accessToken.slice(0, 4)}…\` (${accessToken.length} characters), a live token the demo provider issued for ${USER}, and answered ${seen.status}. Its Set-Cookie and X-Served-By headers did not come back: only allowlisted response headers do.`);
  const agentSaw = [
    minted.token,
    subToken,
    JSON.stringify(inspected, (_k, v: unknown) => (v instanceof Uint8Array ? Buffer.from(v).toString("base64") : v)),
    JSON.stringify(allowed.headers),
    allowed.text(),
  ].join("\n");
  expect(accessToken.length >= 16, "the demo API did not receive an access token");
  expect(!agentSaw.includes(accessToken), "THE ACCESS TOKEN REACHED THE AGENT");
  expect(!b.output().includes(accessToken), "THE ACCESS TOKEN APPEARS IN THE BROKER'S OUTPUT");
  out(`    ${green("✓")} the agent never saw the OAuth token: it is in neither capability, nor the Inspect answer, nor the`);
  out("      response the agent got back (nor in anything the broker printed or logged).");

  // --- 5. denied calls ---------------------------------------------------------------------------------------------------------
  step("The sub-agent tries to go further (denied)");
  const beforeDenied = api.requests.length;
  out("    sub-agent → GET /repos/acme/secrets");
  const outside = await refused(sub.fetch(connection, { path: "/repos/acme/secrets" }), "GET /repos/acme/secrets");
  printDenied(outside);
  expect(outside.reason === "CAPABILITY_CHECK_FAILED", `expected CAPABILITY_CHECK_FAILED, got ${outside.reason}`);
  const blockIndex = Number(outside.metadata.block);
  const checkIndex = Number(outside.metadata.check);
  const failing = inspected.blocks[blockIndex]?.checks[checkIndex];
  out(`    failing check: block ${blockIndex}, check ${checkIndex}: ${failing ?? "(not found)"}`);
  expect(failing?.includes(SUB_AGENT_PREFIX), "the failing check is not the sub-agent's path check");
  say("The orchestrator's own grant covers /repos/acme/secrets; the check the orchestrator added in block 1 does not, and every check of every block must pass.");
  out();
  out("    sub-agent → DELETE /repos/acme/widgets");
  const del = await refused(sub.fetch(connection, { method: "DELETE", path: "/repos/acme/widgets" }), "DELETE /repos/acme/widgets");
  printDenied(del);
  expect(del.reason === "NO_MATCHING_GRANT", `expected NO_MATCHING_GRANT, got ${del.reason}`);
  const dryRun = await sub.authorize(connection, { method: "DELETE", path: "/repos/acme/widgets" });
  say(`why, says a dry run (CapabilityService.Authorize): ${dryRun.denials.map((d) => `${d.reason}: ${d.rule}`).join("; ")}`, 4, 2);
  say(`The path is inside the sub-agent's prefix, but no block can add a right: block 0 grants DELETE only under ${BRANCHES_PREFIX}. Refused outright, not held for approval: an approval never widens a capability.`);
  expect(api.requests.length === beforeDenied, "a denied call reached the demo API");
  out(`    ${green("✓")} the demo API received no request for either: refusals happen before anything leaves the broker.`);

  // --- 6. step-up approval -----------------------------------------------------------------------------------------------------
  step(`The sub-agent deletes a branch: held until ${USER} approves`);
  const branch = `${BRANCHES_PREFIX}old-experiment`;
  const beforeHeld = api.requests.length;
  out(`    sub-agent → DELETE ${branch}`);
  const held = await refused(sub.fetch(connection, { method: "DELETE", path: branch }), `DELETE ${branch}`);
  out(`    ${red("HELD")}     ${held.reason}  ${dim(`(gRPC ${grpcStatus[held.code] ?? held.code}), approval ${held.metadata.approval_id}`)}`);
  expect(held.reason === "APPROVAL_REQUIRED", `expected APPROVAL_REQUIRED, got ${held.reason}`);
  expect(api.requests.length === beforeHeld, "a held call reached the demo API");
  say("The grant covers it, but the sub-agent's block says a DELETE needs a person's yes each time: the broker stored a pending approval (the request, who asks and why; nothing secret) and sent nothing.");
  const event = await inbox.next();
  expect(event.id === held.metadata.approval_id, "the webhook event is for another approval");
  expect(inbox.rejected === 0, "a webhook delivery failed its signature check");
  say(`The approval inbox received the signed event (signature verified) for ${event.method} ${event.path}, "${event.reasons.join("; ")}", with a one-time link for ${USER}. A bot would message her; here a few lines of code open the page and press Approve:`);
  const page = await decideOnApprovalPage(event.approvalUrl, "approve");
  out(`    the page shows: ${page.shown}`);
  out(`    after Approve it says: "${page.result}"`);
  expect(page.result === "Approved", `the approval page said ${page.result}`);
  out(`    sub-agent → DELETE ${branch}  (again, with capvault-approval-id: ${held.metadata.approval_id})`);
  const deleted = await sub.fetch(connection, { method: "DELETE", path: branch, approvalId: held.metadata.approval_id });
  printResponse("the approved call went through", deleted);
  expect(deleted.status === 204, `the approved DELETE returned HTTP ${deleted.status}, expected 204`);
  out(`    sub-agent → DELETE ${branch}  (the same approval once more)`);
  const replayed = await refused(sub.fetch(connection, { method: "DELETE", path: branch, approvalId: held.metadata.approval_id }), "the replayed approval");
  printDenied(replayed);
  expect(replayed.reason === "APPROVAL_USED", `expected APPROVAL_USED, got ${replayed.reason}`);
  expect(api.requests.length === beforeHeld + 1, "the demo API did not receive exactly one DELETE");
  out(`    ${green("✓")} one approval, one call: the demo API received exactly one DELETE.`);

  // --- 7. revocation ---------------------------------------------------------------------------------------------------------
  step("The operator revokes the sub-agent's token");
  const subBlockId = inspected.blocks[1].revocationId;
  const revoked = await op.revoke([subBlockId], "sub-agent finished its task");
  say(`The operator revokes block 1 of the sub-agent's token (CapabilityService.Revoke, revocation id ${short(subBlockId, 16)}; ${revoked.revoked} revoked). Every token containing that block stops working; the orchestrator's token does not contain it.`);
  out("    sub-agent → GET /repos/acme/widgets/issues");
  const afterRevoke = await refused(sub.fetch(connection, { path: "/repos/acme/widgets/issues" }), "the revoked sub-agent's call");
  printDenied(afterRevoke);
  expect(afterRevoke.reason === "CAPABILITY_REVOKED", `expected CAPABILITY_REVOKED, got ${afterRevoke.reason}`);
  out("    orchestrator → GET /repos/acme/widgets/issues");
  const stillWorks = await orchestrator.fetch(connection, { path: "/repos/acme/widgets/issues" });
  printResponse("the orchestrator's token is untouched", stillWorks);
  expect(stillWorks.status === 200, `the orchestrator got HTTP ${stillWorks.status} after the revocation, expected 200`);
  const reinspected = await sub.inspect();
  out(`    Inspect on the sub-agent's token now says: revoked = ${reinspected.revoked}`);

  // --- 8. the audit trail ----------------------------------------------------------------------------------------------------
  step("The audit trail");
  say(`Every decision was recorded. The operator reads tenant "${TENANT}"'s trail (AdminService.ListAuditEvents):`);
  const events = await auditEvents(op, 8);
  printAuditTable(events, subBlockId);
  const verified = await op.verifyAudit();
  expect(verified.ok, `the audit chain does not verify: event ${verified.brokenEventId} (#${verified.brokenSequence}): ${verified.problem}`);
  out();
  out(`    ${green("✓")} Audit chain verified (AdminService.VerifyAudit): ${verified.eventsChecked} events, each hash covering the one`);
  out("      before it, so none was altered, removed or reordered.");
}

/**
 * Attenuation as the orchestrator would do it: offline with the client library when it offers that (no broker call,
 * any Biscuit library could do the same), otherwise through the Attenuate RPC, which appends the same kind of block.
 */
async function attenuateForSubAgent(
  orchestrator: CapvaultClient,
  token: string,
  restriction: Partial<Restriction>,
): Promise<{ token: string; how: string }> {
  const offline = (clientLibrary as Record<string, unknown>).attenuateOffline;
  if (typeof offline === "function") {
    const mismatch = (why: string) =>
      new Error(`attenuateOffline from src/client ${why}; the demo calls it as attenuateOffline(token, restriction) and expects a token string: update attenuateForSubAgent in examples/demo/demo.ts`);
    const narrowed: unknown = await Promise.resolve()
      .then(() => offline(token, restriction))
      .catch((err: Error) => {
        throw mismatch(`failed (${err.message})`);
      });
    if (typeof narrowed !== "string") throw mismatch("did not return a string");
    return { token: narrowed, how: "It does so offline with the client library (attenuateOffline): no call to the broker, and no secret needed." };
  }
  return {
    token: await orchestrator.attenuate(restriction),
    how: "It does so with CapabilityService.Attenuate (the client library has no offline attenuation yet; any Biscuit library can append the same block offline, without asking the broker).",
  };
}

/** The tenant's audit events, waiting (briefly) for the last proxy calls: audit writes are queued, not awaited. */
async function auditEvents(op: Operator, proxyCalls: number): Promise<AuditEvent[]> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const { events } = await op.listAuditEvents();
    if (events.filter((e) => e.action === "proxy").length >= proxyCalls || Date.now() > deadline) return events;
    await new Promise((r) => setTimeout(r, 100));
  }
}

function printAuditTable(events: AuditEvent[], subBlockId: string): void {
  const rows = events.map((e) => {
    const who = e.subject + (e.delegationChain.includes(subBlockId) ? " › sub-agent" : "");
    const request = e.method ? `${e.method} ${e.path}` : e.action === "proxy" || e.action === "authorize" ? "" : e.detail || e.connection;
    // (the broker writes "block -1 check -1" as the detail of a dry run refused by the grant policy: nothing to add)
    const detail = e.decision === "deny" && e.detail && !/^block -1 check -1$/.test(e.detail) ? `(${e.detail})` : "";
    const reason = [e.reason, detail].filter(Boolean).join(" ");
    const decision = e.decision + (e.upstreamStatus ? ` ${e.upstreamStatus}` : "");
    return [String(e.sequence), e.time ? e.time.toISOString().slice(11, 23) : "", who || "-", e.action, request, decision, reason];
  });
  const header = ["#", "time (UTC)", "subject", "action", "method path / detail", "decision", "reason"];
  const widths = header.map((h, i) => Math.min(Math.max(h.length, ...rows.map((r) => r[i].length)), i === 4 ? 44 : 40));
  const fit = (s: string, w: number) => (s.length > w ? `${s.slice(0, w - 1)}…` : s.padEnd(w));
  out(`    ${header.map((h, i) => fit(h, widths[i])).join("  ")}`.trimEnd());
  out(`    ${widths.map((w) => "-".repeat(w)).join("  ")}`);
  for (const r of rows) out(`    ${r.map((c, i) => fit(c, widths[i])).join("  ")}`.trimEnd());
  say("\"orchestrator › sub-agent\": the call was made with the orchestrator's capability plus the block it added for the sub-agent (the event's delegation chain names every block's revocation id). \"allow 200\": allowed, and the API answered 200.", 4);
}

// ---------------------------------------------------------------------------------------------------------------------

main().then(
  async () => {
    if (interrupted) return; // the signal handler cleans up and exits
    const notes = await cleanUp();
    out();
    out(bold("Cleaning up"));
    for (const n of notes) out(`  ${n}`);
    out();
    out(bold(`Demo complete in ${secondsSince(startedAt)} s.`));
    process.exit(0);
  },
  async (err: Error & { brokerOutput?: string }) => {
    if (interrupted) return; // a step failed because everything is being stopped: not worth reporting
    const logs = broker?.output() ?? err.brokerOutput ?? "";
    const notes = await cleanUp();
    fail();
    fail(red(bold(`DEMO FAILED${stepNumber ? ` in step ${stepNumber}` : ""}: ${err.message}`)));
    if (err instanceof CapvaultClientError) fail(`  (broker error ${err.reason}, metadata ${JSON.stringify(err.metadata)})`);
    if (logs.trim()) {
      fail();
      fail("The broker's last output lines:");
      const redacted = logs.replace(/(CAPVAULT_TOKEN=)\S+/g, "$1<redacted>");
      for (const line of redacted.trim().split("\n").slice(-25)) fail(`  ${line}`);
    }
    if (idp?.notices.length) {
      fail();
      fail("The demo OAuth provider's notices:");
      for (const n of idp.notices) fail(`  ${n}`);
    }
    for (const n of notes) fail(`  ${n}`);
    fail();
    fail("docs/demo.md explains each step and what to do when one fails.");
    process.exit(1);
  },
);
