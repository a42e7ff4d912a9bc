import type { ServerDuplexStream } from "@grpc/grpc-js";
import { bearerCapability } from "../capabilities/capability-authority.js";
import { CapvaultError } from "../errors/capvault-error.js";
import { toServiceError } from "../errors/grpc-status.js";
import type {
  ProxyRequest,
  ProxyResponse,
  ProxyServiceServer,
  ProxyStreamRequest,
  ProxyStreamResponse,
} from "../gen/capvault/v1/proxy.js";
import type { ResolvedAccessToken } from "../oauth/refresher.js";
import { callContext, type CallContext } from "../server/call-context.js";
import { unary } from "../server/rpc-handlers.js";
import { MalformedMessage } from "../server/service-definitions.js";
import { forwardWithRefresh } from "./forward-with-refresh.js";
import {
  auditProxyCall,
  authorizeRequest,
  canonicalize,
  type ProxyAuditFacts,
  type ProxyDependencies,
} from "./proxy-pipeline.js";
import type { ConnectionRoute } from "./connection-directory.js";
import { callUpstreamStreaming } from "./upstream-call.js";

const epochDeadline = (ctx: CallContext) => ctx.deadline?.getTime();

/**
 * ProxyService: the agent's only way to use a connection. Each call is the same short list of steps:
 * authenticate the capability, canonicalize the request, route it to its connection, authorize it, resolve the
 * credential, call upstream (refreshing at most once on an invalid-token 401), filter the response, audit.
 */
export function createProxyService(deps: ProxyDependencies): ProxyServiceServer {
  return {
    proxy: unary<ProxyRequest, ProxyResponse>("Proxy", async (message, ctx) => {
      const facts: ProxyAuditFacts = { startedAt: performance.now() };
      try {
        const token = bearerCapability(ctx);
        facts.request = canonicalize(deps, message.request);
        facts.route = await deps.connections.route(facts.request.connection);
        facts.decision = await authorizeRequest(deps, token, facts);
        const credential = new CredentialHandle(deps, facts.route, epochDeadline(ctx));
        const response = await forwardWithRefresh({
          target: facts.route.target,
          request: facts.request,
          dispatcher: deps.dispatchers.for(facts.route.target),
          signal: ctx.signal,
          deadline: epochDeadline(ctx),
          limits: deps.upstreamLimits,
          accessToken: () => credential.current(),
          refresh: () => credential.refreshed(),
        });
        facts.upstreamStatus = response.status;
        return { status: response.status, headers: response.headers, body: response.body };
      } catch (err) {
        facts.error = err;
        throw err;
      } finally {
        auditProxyCall(deps, facts);
      }
    }),

    proxyStream: (call: ServerDuplexStream<ProxyStreamRequest, ProxyStreamResponse>) => {
      const ctx = callContext(call);
      proxyStream(deps, call, ctx).catch((err) => call.destroy(Object.assign(new Error(), toServiceError(err))));
    },
  };
}

/** The credential of one call: resolved once, refreshed at most once through the cross-broker single flight. */
class CredentialHandle {
  private resolved: ResolvedAccessToken | undefined;

  constructor(
    private readonly deps: ProxyDependencies,
    private readonly route: ConnectionRoute,
    private readonly deadline: number | undefined,
  ) {}

  async current(): Promise<string> {
    this.resolved = await this.deps.tokens.get(this.route.tenant, this.route.id, this.deadline);
    return this.resolved.accessToken;
  }

  async refreshed(): Promise<string> {
    this.resolved = await this.deps.tokens.refresh(this.route.tenant, this.route.id, this.resolved!, this.deadline);
    return this.resolved.accessToken;
  }
}

/** ProxyStream: the head first, then body chunks both ways. Authorized before any body byte is read or sent. */
async function proxyStream(
  deps: ProxyDependencies,
  call: ServerDuplexStream<ProxyStreamRequest, ProxyStreamResponse>,
  ctx: CallContext,
): Promise<void> {
  const facts: ProxyAuditFacts = { startedAt: performance.now() };
  const messages = call[Symbol.asyncIterator]() as AsyncIterator<ProxyStreamRequest | MalformedMessage>;
  try {
    const first = await messages.next();
    if (first.done || first.value instanceof MalformedMessage || !first.value.head) {
      throw new CapvaultError("INVALID_REQUEST", "the first ProxyStream message must carry the request head");
    }
    const token = bearerCapability(ctx);
    facts.request = canonicalize(deps, { ...first.value.head, body: Buffer.alloc(0) });
    facts.route = await deps.connections.route(facts.request.connection);
    facts.decision = await authorizeRequest(deps, token, facts);
    const accessToken = (await deps.tokens.get(facts.route.tenant, facts.route.id, epochDeadline(ctx))).accessToken;
    const response = await callUpstreamStreaming({
      target: facts.route.target,
      request: facts.request,
      credential: accessToken,
      dispatcher: deps.dispatchers.for(facts.route.target),
      signal: ctx.signal,
      deadline: epochDeadline(ctx),
      limits: deps.upstreamLimits,
      body: bodyChunks(messages),
    });
    facts.upstreamStatus = response.status;
    await write(call, { head: { status: response.status, headers: response.headers } });
    for await (const chunk of response.body) await write(call, { bodyChunk: chunk });
    call.end();
  } catch (err) {
    facts.error = err;
    throw err;
  } finally {
    auditProxyCall(deps, facts);
  }
}

async function* bodyChunks(messages: AsyncIterator<ProxyStreamRequest | MalformedMessage>): AsyncIterable<Uint8Array> {
  for (;;) {
    const next = await messages.next();
    if (next.done) return;
    if (next.value instanceof MalformedMessage || next.value.head || !next.value.bodyChunk) {
      throw new CapvaultError("INVALID_REQUEST", "after the head, ProxyStream messages must carry body chunks");
    }
    yield next.value.bodyChunk;
  }
}

function write(call: ServerDuplexStream<ProxyStreamRequest, ProxyStreamResponse>, message: ProxyStreamResponse): Promise<void> {
  return new Promise((resolve) => (call.write(message) ? resolve() : call.once("drain", () => resolve())));
}
