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
import { upstreamUrlFor } from "./build-upstream-url.js";
import { redactCredentialEchoes, redactCredentialEchoStream, withoutCredentialEchoes } from "./credential-echoes.js";
import { forwardWithRefresh } from "./forward-with-refresh.js";
import { isInvalidTokenResponse } from "./invalid-token-response.js";
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
        const url = upstreamUrlFor(facts.route.target, facts.request);
        facts.decision = await authorizeRequest(deps, token, facts, url);
        const credential = new CredentialHandle(deps, facts.route, epochDeadline(ctx));
        const response = await forwardWithRefresh({
          target: facts.route.target,
          request: facts.request,
          url,
          dispatcher: deps.dispatchers.for(facts.route.target),
          signal: ctx.signal,
          signalCoversDeadline: true,
          deadline: epochDeadline(ctx),
          limits: deps.upstreamLimits,
          accessToken: () => credential.current(),
          refresh: () => credential.refreshed(),
        });
        facts.upstreamStatus = response.status;
        return {
          status: response.status,
          headers: withoutCredentialEchoes(response.headers, credential.sent),
          body: redactCredentialEchoes(response.body, credential.sent),
        };
      } catch (err) {
        facts.error = err;
        throw err;
      } finally {
        auditProxyCall(deps, facts);
      }
    }),

    proxyStream: (call: ServerDuplexStream<ProxyStreamRequest, ProxyStreamResponse>) => {
      const ctx = callContext(call);
      proxyStream(deps, call, ctx)
        .catch((err) => failStream(call, err))
        .finally(() => ctx.finished());
    },
  };
}

/** The credential of one call: resolved once, refreshed at most once through the cross-broker single flight. */
class CredentialHandle {
  private resolved: ResolvedAccessToken | undefined;
  /** Every access token this call handed to the upstream request (kept out of the response: credential-echoes.ts). */
  readonly sent: string[] = [];

  constructor(
    private readonly deps: ProxyDependencies,
    private readonly route: ConnectionRoute,
    private readonly deadline: number | undefined,
  ) {}

  async current(): Promise<string> {
    this.resolved = await this.deps.tokens.get(this.route.tenant, this.route.id, this.deadline);
    this.sent.push(this.resolved.accessToken);
    return this.resolved.accessToken;
  }

  async refreshed(): Promise<string> {
    this.resolved = await this.deps.tokens.refresh(this.route.tenant, this.route.id, this.resolved!, this.deadline);
    this.sent.push(this.resolved.accessToken);
    return this.resolved.accessToken;
  }
}

/**
 * ProxyStream: the head first, then body chunks both ways. Authorized before any body byte is read or sent. Not
 * retried after a 401 (the body cannot be replayed), but the credential is refreshed for the next call.
 */
async function proxyStream(
  deps: ProxyDependencies,
  call: ServerDuplexStream<ProxyStreamRequest, ProxyStreamResponse>,
  ctx: CallContext,
): Promise<void> {
  const facts: ProxyAuditFacts = { startedAt: performance.now() };
  // Not call[Symbol.asyncIterator](): that iterator DESTROYS the duplex stream when the client half-closes, which
  // kills the response side too (the head and body would never be written and no status would ever be sent).
  const messages = call.iterator({ destroyOnReturn: false }) as AsyncIterator<ProxyStreamRequest | MalformedMessage>;
  try {
    const first = await messages.next();
    if (first.done || first.value instanceof MalformedMessage || !first.value.head) {
      throw new CapvaultError("INVALID_REQUEST", "the first ProxyStream message must carry the request head");
    }
    const token = bearerCapability(ctx);
    facts.request = canonicalize(deps, { ...first.value.head, body: Buffer.alloc(0) });
    facts.route = await deps.connections.route(facts.request.connection);
    const url = upstreamUrlFor(facts.route.target, facts.request);
    facts.decision = await authorizeRequest(deps, token, facts, url);
    const credential = new CredentialHandle(deps, facts.route, epochDeadline(ctx));
    const accessToken = await credential.current();
    const response = await callUpstreamStreaming({
      target: facts.route.target,
      request: facts.request,
      url,
      credential: accessToken,
      dispatcher: deps.dispatchers.for(facts.route.target),
      signal: ctx.signal,
      signalCoversDeadline: true,
      deadline: epochDeadline(ctx),
      limits: deps.upstreamLimits,
      body: bodyChunks(messages),
    });
    facts.upstreamStatus = response.status;
    // A streamed body cannot be replayed, so an invalid-token 401 goes back as is; but the connection is refreshed
    // (once, through the same single flight) so that the agent's retry works instead of failing until expiry.
    const refreshing = isInvalidTokenResponse(response.status, response.headers)
      ? credential.refreshed().then(
          () => undefined,
          () => undefined, // refresh failures are audited by the refresher; the next call reports them
        )
      : undefined;
    await write(call, { head: { status: response.status, headers: withoutCredentialEchoes(response.headers, credential.sent) } });
    for await (const chunk of redactCredentialEchoStream(response.body, [...credential.sent])) await write(call, { bodyChunk: chunk });
    await refreshing;
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

/**
 * End a ProxyStream call with an error status, after whatever was already written (e.g. the head of a response whose
 * body then grew past the cap). Not `call.destroy(err)`: grpc-js sends no status at all for a destroyed server stream,
 * so the agent would hang until its deadline; an 'error' event makes grpc-js end the call with this status.
 */
function failStream(call: ServerDuplexStream<ProxyStreamRequest, ProxyStreamResponse>, err: unknown): void {
  if (call.destroyed || call.writableEnded) return; // cancelled by the client, or already ended
  call.emit("error", Object.assign(new Error(), toServiceError(err)));
}

/** Write one message, waiting for back-pressure to clear; fails with CANCELLED if the call goes away meanwhile. */
function write(call: ServerDuplexStream<ProxyStreamRequest, ProxyStreamResponse>, message: ProxyStreamResponse): Promise<void> {
  if (call.destroyed) return Promise.reject(new CapvaultError("CANCELLED"));
  if (call.write(message)) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const done = (ok: boolean) => () => {
      call.off("drain", onDrain);
      call.off("close", onClose);
      if (ok) resolve();
      else reject(new CapvaultError("CANCELLED"));
    };
    const onDrain = done(true);
    const onClose = done(false);
    call.once("drain", onDrain);
    call.once("close", onClose);
  });
}
