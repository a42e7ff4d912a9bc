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
import { isInvalidTokenResponse } from "./invalid-token-response.js";
import { admit } from "./admission.js";
import { redactCredentialEchoes, redactCredentialEchoStream, withoutCredentialEchoes } from "./credential-echoes.js";
import { proxyAuditEntry, type ProxyDependencies } from "./proxy-pipeline.js";
import { observeAdmission, observeCredential, observed, observeUpstream } from "./proxy-telemetry.js";
import { writeAccessLine } from "../observability/access-log.js";
import { currentTraceId, inRpcSpan } from "../observability/tracing.js";
import type { ConnectionRoute } from "./connection-directory.js";
import { callUpstreamStreaming } from "./upstream-call.js";

const epochDeadline = (ctx: CallContext) => ctx.deadline?.getTime();

/**
 * ProxyService: the agent's only way to use a connection. Each call is the same short list of steps:
 * 1. admit: authenticate the capability, canonicalize the request, route it, authorize (admission.ts); a request
 *    that needs a person's approval is held (src/approvals) or redeems its approval; a refusal is queued for the
 *    audit trail and answered at once (nothing was done);
 * 2. reserve the call's audit event (refused, with nothing done, when the trail cannot take it);
 * 3. resolve the credential and call upstream (refreshing at most once on an invalid-token 401);
 * 4. filter the response (allowlisted headers; no echo of the credential in headers or body: credential-echoes.ts);
 * 5. store the audit event and only then answer (a call whose event cannot be stored is not answered OK).
 * Each step is observed from the outside (proxy-telemetry.ts): a span and a timing, and one count per call.
 */
export function createProxyService(deps: ProxyDependencies): ProxyServiceServer {
  return {
    proxy: unary<ProxyRequest, ProxyResponse>("Proxy", async (message, ctx) => {
      const startedAt = performance.now();
      const admitted = await observeAdmission(deps, () =>
        admit(deps, () => bearerCapability(ctx), message.request, { approvalId: approvalIdOf(ctx) }),
      );
      if (!admitted.ok) {
        deps.audit.record(observed(deps, proxyAuditEntry(admitted.known, { startedAt, error: admitted.error }), ctx.access));
        throw admitted.error;
      }
      const audit = deps.audit.reserve();
      const { request, route, url } = admitted.admission;
      const credential = new CredentialHandle(deps, route, epochDeadline(ctx));
      let answer: ProxyResponse | undefined;
      let failure: unknown;
      try {
        const response = await forwardWithRefresh({
          target: route.target,
          request,
          url,
          dispatcher: deps.dispatchers.for(route.target),
          signal: ctx.cancellation,
          signalCoversDeadline: true,
          deadline: epochDeadline(ctx),
          limits: deps.upstreamLimits,
          accessToken: () => credential.current(),
          refresh: () => credential.refreshed(),
          observe: (send) => observeUpstream(deps, route.provider, send),
        });
        answer = {
          status: response.status,
          headers: withoutCredentialEchoes(response.headers, credential.sent),
          body: redactCredentialEchoes(response.body, credential.sent),
        };
      } catch (err) {
        failure = err;
      }
      await audit.commit(observed(deps, proxyAuditEntry(admitted.admission, { startedAt, upstreamStatus: answer?.status, error: failure }), ctx.access));
      if (!answer) throw failure;
      return answer;
    }),

    proxyStream: (call: ServerDuplexStream<ProxyStreamRequest, ProxyStreamResponse>) => {
      const ctx = callContext(call);
      const startedAt = performance.now();
      inRpcSpan("ProxyStream", ctx.metadata, () => {
        ctx.access.traceId = currentTraceId();
        return proxyStream(deps, call, ctx);
      })
        .then(
          () => writeAccessLine("ProxyStream", ctx.access, startedAt),
          (err) => {
            writeAccessLine("ProxyStream", ctx.access, startedAt, err);
            failStream(call, err);
          },
        )
        .finally(() => ctx.finished());
    },
  };
}

/** The approval a repeated call redeems (metadata `capvault-approval-id`), if any. */
function approvalIdOf(ctx: CallContext): string | undefined {
  const value = ctx.metadata.get(APPROVAL_ID_METADATA)[0];
  return typeof value === "string" && value ? value : undefined;
}

/** The metadata key of an approval id on a repeated call. */
export const APPROVAL_ID_METADATA = "capvault-approval-id";

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
    this.resolved = await observeCredential("resolve", () => this.deps.tokens.get(this.route.tenant, this.route.id, this.deadline));
    this.sent.push(this.resolved.accessToken);
    return this.resolved.accessToken;
  }

  async refreshed(): Promise<string> {
    this.resolved = await observeCredential("refresh", () => this.deps.tokens.refresh(this.route.tenant, this.route.id, this.resolved!, this.deadline));
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
  const startedAt = performance.now();
  // Not call[Symbol.asyncIterator](): that iterator DESTROYS the duplex stream when the client half-closes, which
  // kills the response side too (the head and body would never be written and no status would ever be sent).
  const messages = call.iterator({ destroyOnReturn: false }) as AsyncIterator<ProxyStreamRequest | MalformedMessage>;
  const first = await messages.next();
  const head = first.done || first.value instanceof MalformedMessage ? undefined : first.value.head;
  const admitted = await observeAdmission(deps, () =>
    admit(deps, () => bearerCapability(ctx), head && { ...head, body: Buffer.alloc(0) }, {
      missingRequest: "the first ProxyStream message must carry the request head",
      streaming: true,
    }),
  );
  if (!admitted.ok) {
    deps.audit.record(observed(deps, proxyAuditEntry(admitted.known, { startedAt, error: admitted.error }), ctx.access));
    throw admitted.error;
  }
  const audit = deps.audit.reserve();
  const { request, route, url } = admitted.admission;
  const credential = new CredentialHandle(deps, route, epochDeadline(ctx));
  let upstreamStatus: number | undefined;
  let failure: unknown;
  let refreshing: Promise<void> | undefined;
  try {
    const accessToken = await credential.current();
    const response = await observeUpstream(deps, route.provider, () => callUpstreamStreaming({
      target: route.target,
      request,
      url,
      credential: accessToken,
      dispatcher: deps.dispatchers.for(route.target),
      signal: ctx.cancellation,
      signalCoversDeadline: true,
      deadline: epochDeadline(ctx),
      limits: deps.upstreamLimits,
      body: bodyChunks(messages),
    }));
    upstreamStatus = response.status;
    // A streamed body cannot be replayed, so an invalid-token 401 goes back as is; but the connection is refreshed
    // (once, through the same single flight) so that the agent's retry works instead of failing until expiry.
    refreshing = isInvalidTokenResponse(response.status, response.headers)
      ? credential.refreshed().then(
          () => undefined,
          () => undefined, // refresh failures are audited by the refresher; the next call reports them
        )
      : undefined;
    await write(call, { head: { status: response.status, headers: withoutCredentialEchoes(response.headers, credential.sent) } });
    for await (const chunk of redactCredentialEchoStream(response.body, [...credential.sent])) await write(call, { bodyChunk: chunk });
    await refreshing;
  } catch (err) {
    failure = err;
  }
  // The stream's status (OK or the failure) is sent only once its event is stored.
  await audit.commit(observed(deps, proxyAuditEntry(admitted.admission, { startedAt, upstreamStatus, error: failure }), ctx.access));
  if (failure !== undefined) throw failure;
  call.end();
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
