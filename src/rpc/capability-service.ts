import type { AuditLog } from "../audit/audit-log.js";
import { CapvaultError } from "../errors/capvault-error.js";
import type {
  AttenuateRequest,
  AttenuateResponse,
  AuthorizeRequest,
  AuthorizeResponse,
  CapabilityServiceServer,
  Fact,
  InspectRequest,
  InspectResponse,
  ListPublicKeysRequest,
  ListPublicKeysResponse,
  MintRequest,
  MintResponse,
  Restriction as RestrictionMessage,
  RevokeRequest,
  RevokeResponse,
  Term,
} from "../gen/capvault/v1/capability.js";
import { admit } from "../proxy/admission.js";
import { proxyAuditEntry, type ProxyDependencies } from "../proxy/proxy-pipeline.js";
import type { Store } from "../store/store.js";
import { unary } from "../server/rpc-handlers.js";
import { bearerCapability, type CapabilityAuthority } from "../capabilities/capability-authority.js";
import { printTerm } from "../capabilities/datalog-printer.js";
import { boundedTtlSeconds, mintBoundsOf } from "../capabilities/mint-bounds.js";
import type { Predicate, TermValue } from "../capabilities/token-format.js";
import type { Restriction } from "../capabilities/vocabulary.js";

export interface CapabilityServiceDependencies {
  authority: CapabilityAuthority;
  store: Store;
  audit: AuditLog;
  /** For Authorize's dry run: the same canonicalization and routing as Proxy. */
  proxy: Pick<ProxyDependencies, "connections" | "canonicalLimits">;
}

/** CapabilityService: thin adapters over the capability runtime. Mint and Revoke need an operator capability. */
/** Every granted connection exists in the tenant (pending ones too): CONNECTION_NOT_FOUND naming the first that does not. */
async function assertConnectionsExist(store: Pick<Store, "connections">, tenant: string, connections: string[]): Promise<void> {
  for (const connection of new Set(connections)) {
    if (typeof connection !== "string" || !connection) continue; // the grant's own validation names it
    if (!(await store.connections.get(tenant, connection))) {
      throw new CapvaultError("CONNECTION_NOT_FOUND", `a grant names connection ${connection}, which does not exist in tenant ${tenant} (allow_unknown_connections to mint it anyway)`, {
        metadata: { connection },
      });
    }
  }
}

export function createCapabilityService(deps: CapabilityServiceDependencies): CapabilityServiceServer {
  const { authority } = deps;
  return {
    mint: unary<MintRequest, MintResponse>("Mint", async (req, ctx) => {
      const op = await authority.requireOperator(ctx, req.tenant, "mint");
      if (!req.allowUnknownConnections) await assertConnectionsExist(deps.store, req.tenant, req.grants.map((g) => g.connection));
      // Minting never widens: the minter's narrowing bounds what it mints (mint-bounds.ts).
      const minter = await authority.caps.inspect(bearerCapability(ctx), authority.keys.keys(), authority.revocations.set);
      const bounds = mintBoundsOf(minter, { operator: req.operator });
      const now = new Date();
      const requestedTtl = req.ttl ? req.ttl.seconds + req.ttl.nanos / 1e9 : undefined;
      let out = await authority.caps.mint({
        rootKey: authority.keys.signingKey(),
        tenant: req.tenant,
        subject: req.subject,
        grants: req.grants.map((g) => ({ connection: g.connection, method: g.method, pathPrefix: g.pathPrefix })),
        ttlSeconds: boundedTtlSeconds(requestedTtl, bounds, now),
        operator: req.operator,
        now,
      });
      for (const restriction of bounds.carried) {
        const narrowed = await authority.caps.attenuate(out.token, restriction, authority.keys.keys(), now);
        out = { ...out, token: narrowed.token, revocationIds: narrowed.revocationIds };
      }
      await deps.audit.recordAndWait({
        tenant: req.tenant,
        action: "mint",
        subject: op.subject,
        delegationChain: op.revocationIds,
        decision: "ok",
        detail:
          `minted for ${req.subject}${req.operator ? " (operator)" : ""}: ${req.grants.length} grant(s), authority ${out.revocationIds[0]}` +
          (bounds.carried.length ? `, ${bounds.carried.length} block(s) of the minter's restrictions carried` : ""),
      });
      return { token: out.token, expiresAt: out.expiresAt, revocationIds: out.revocationIds, rootKeyId: out.rootKeyId };
    }),

    attenuate: unary<AttenuateRequest, AttenuateResponse>("Attenuate", async (req, ctx) => {
      // The token to narrow: in the request, or (like every other RPC) in the authorization metadata.
      const token = req.token || bearerCapability(ctx);
      const before = await authority.caps.inspect(token, authority.keys.keys(), authority.revocations.set);
      if (before.revoked) throw new CapvaultError("CAPABILITY_REVOKED");
      const out = await authority.caps.attenuate(token, restrictionOf(req.restriction), authority.keys.keys());
      await deps.audit.recordAndWait({
        tenant: before.tenant,
        action: "attenuate",
        subject: before.subject,
        delegationChain: out.revocationIds,
        decision: "ok",
        detail: `block ${out.revocationIds.length - 1} appended`,
      });
      return { token: out.token, revocationIds: out.revocationIds };
    }),

    inspect: unary<InspectRequest, InspectResponse>("Inspect", async (req, ctx) => {
      const out = await authority.caps.inspect(req.token || bearerCapability(ctx), authority.keys.keys(), authority.revocations.set);
      return {
        blocks: out.blocks.map((b) => ({
          index: b.index,
          revocationId: b.revocationId,
          facts: b.facts.map(toFact),
          checks: b.checks,
          expiresAt: b.expiresAt,
        })),
        rootKeyId: out.rootKeyId,
        expiresAt: out.expiresAt,
        revocationIds: out.revocationIds,
        tenant: out.tenant,
        subject: out.subject,
        revoked: out.revoked,
      };
    }),

    authorize: unary<AuthorizeRequest, AuthorizeResponse>("Authorize", async (req, ctx) => {
      // A dry run acts on nothing: its event is queued for the trail and the answer does not wait for it.
      const admitted = await admit(deps.proxy as ProxyDependencies, () => req.token || bearerCapability(ctx), req.request, { dryRun: true });
      if (!admitted.ok) {
        deps.audit.record({ ...proxyAuditEntry(admitted.known, { startedAt: 0, error: admitted.error }), action: "authorize", latencyMs: 0 });
        throw admitted.error;
      }
      const { route, decision } = admitted.admission;
      deps.audit.record({
        tenant: route.tenant,
        action: "authorize",
        subject: decision.subject,
        delegationChain: decision.revocationIds,
        connection: route.id,
        provider: route.provider,
        method: decision.canonicalMethod,
        path: decision.canonicalPath,
        decision: decision.allowed ? "allow" : "deny",
        reason: decision.reason ?? "",
        detail: decision.denials.map((d) => (d.blockIndex >= 0 ? `block ${d.blockIndex} check ${d.checkIndex}` : d.policy || d.rule)).join("; "),
      });
      return {
        allowed: decision.allowed,
        denials: decision.denials.map((d) => ({ ...d })),
        canonicalMethod: decision.canonicalMethod,
        canonicalPath: decision.canonicalPath,
      };
    }),

    revoke: unary<RevokeRequest, RevokeResponse>("Revoke", async (req, ctx) => {
      const token = ctx.bearerToken();
      if (!token) throw new CapvaultError("CAPABILITY_MISSING");
      // The operator acts in its own tenant: the revocation counts against that tenant's capabilities only.
      const identity = await authority.caps.inspect(token, authority.keys.keys(), authority.revocations.set);
      const op = await authority.requireOperator(ctx, identity.tenant, "revoke");
      const ids = req.revocationIds.map((id) => id.toLowerCase());
      if (!ids.length || ids.some((id) => !/^[0-9a-f]{16,256}$/.test(id))) {
        throw new CapvaultError("INVALID_REQUEST", "revocation_ids must be hex revocation ids");
      }
      // Audited before it takes effect: a Revoke either is recorded and then done, or answers an error having done
      // nothing. The outcome follows as a second event.
      const event = { tenant: op.tenant, action: "revoke", subject: op.subject, delegationChain: op.revocationIds };
      const what = `${ids.join(",")}${req.reason ? `: ${req.reason.slice(0, 200)}` : ""}`;
      await deps.audit.recordAndWait({ ...event, decision: "intent", detail: `revoking ${what}` });
      let revoked = 0;
      try {
        for (const id of ids) {
          if (await deps.store.revocations.insert({ id, tenant: op.tenant, reason: req.reason.slice(0, 500), revokedAt: new Date() })) revoked++;
        }
      } catch (err) {
        deps.audit.record({ ...event, decision: "error", reason: CapvaultError.from(err).reason, detail: `not revoked (${revoked} of ${ids.length} stored): ${what}` });
        throw err;
      }
      authority.revocations.add(op.tenant, ids);
      deps.audit.record({ ...event, decision: "ok", detail: `revoked ${what}` });
      return { revoked };
    }),

    listPublicKeys: unary<ListPublicKeysRequest, ListPublicKeysResponse>("ListPublicKeys", async () => ({
      keys: authority.keys.keys().map((k) => ({
        keyId: k.id,
        algorithm: k.algorithm ?? "ed25519",
        publicKey: k.publicKeyHex,
        createdAt: authority.keys.createdAt(k.id),
        retired: k.retired === true,
      })),
    })),
  };
}

/** The proto Restriction with its empty strings and lists meaning "not set". */
export function restrictionOf(m: RestrictionMessage | undefined): Restriction {
  if (!m) return {};
  return {
    ...(m.connections.length ? { connections: m.connections } : {}),
    ...(m.methods.length ? { methods: m.methods } : {}),
    ...(m.pathPrefix ? { pathPrefix: m.pathPrefix } : {}),
    ...(m.ttl ? { ttl: { seconds: m.ttl.seconds, nanos: m.ttl.nanos } } : {}),
    ...(m.expiresAt ? { expiresAt: m.expiresAt } : {}),
    ...(m.query.length ? { query: m.query } : {}),
    ...(m.body.length ? { body: m.body } : {}),
    ...(m.checks.length ? { checks: m.checks } : {}),
    ...(m.approvalMethods?.length ? { approvalMethods: m.approvalMethods } : {}),
  };
}

function toFact(p: Predicate): Fact {
  return { name: p.name, terms: p.terms.map(toTerm) };
}

function toTerm(t: TermValue): Term {
  if ("string" in t) return { string: t.string };
  if ("integer" in t) return typeof t.integer === "bigint" && (t.integer > BigInt(Number.MAX_SAFE_INTEGER) || t.integer < -BigInt(Number.MAX_SAFE_INTEGER)) ? { string: t.integer.toString() } : { integer: Number(t.integer) };
  if ("boolean" in t) return { boolean: t.boolean };
  if ("date" in t) return { date: t.date };
  if ("bytes" in t) return { bytes: Buffer.from(t.bytes) };
  return { string: printTerm(t) };
}
