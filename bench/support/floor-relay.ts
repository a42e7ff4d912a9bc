/**
 * The floor for bench/proxy.ts: the least a gRPC relay must do. A grpc-js server with capvault's generated
 * ProxyService definition whose Proxy forwards the request to the upstream over an undici keep-alive pool with a fixed
 * bearer token and returns status, content-type and body. No capability, no routing, no canonicalization, no
 * credential lookup, no header filtering, no audit. Runs in its own process, like the broker.
 *
 *   node --import tsx bench/support/floor-relay.ts <upstream-origin> <ca-file>
 *
 * Reports { address } to the parent over the IPC channel.
 */
import { readFileSync } from "node:fs";
import { Server, ServerCredentials, status, type sendUnaryData, type ServerDuplexStream, type ServerUnaryCall } from "@grpc/grpc-js";
import { Agent, type Dispatcher } from "undici";
import { ProxyServiceService, type ProxyRequest, type ProxyResponse } from "../../src/gen/capvault/v1/proxy.js";

const [origin, caFile] = process.argv.slice(2);
if (!origin || !caFile || !process.send) {
  process.stderr.write("usage: spawned by bench/proxy.ts with an IPC channel, the upstream origin and the CA file\n");
  process.exit(2);
}

const FIXED_TOKEN = "floor-relay-fixed-access-token";
// The broker's fenced dispatcher uses the same pool settings: 32 sockets per origin, 30 s keep-alive, HTTP/1.1.
const agent = new Agent({ keepAliveTimeout: 30_000, connections: 32, allowH2: false, connect: { ca: readFileSync(caFile), rejectUnauthorized: true } });

function proxy(call: ServerUnaryCall<ProxyRequest, ProxyResponse>, callback: sendUnaryData<ProxyResponse>): void {
  const r = call.request.request;
  if (!r) {
    callback({ code: status.INVALID_ARGUMENT, details: "request is required" });
    return;
  }
  const query = r.query.map((q) => `${encodeURIComponent(q.name)}=${encodeURIComponent(q.value)}`).join("&");
  agent
    .request({
      origin,
      path: query ? `${r.path}?${query}` : r.path,
      method: (r.method || "GET") as Dispatcher.HttpMethod,
      headers: { authorization: `Bearer ${FIXED_TOKEN}` },
      ...(r.body.length ? { body: r.body } : {}),
    })
    .then(async (res) => {
      const body = Buffer.from(await res.body.arrayBuffer());
      const type = res.headers["content-type"];
      callback(null, { status: res.statusCode, headers: type ? [{ name: "content-type", value: String(type) }] : [], body });
    })
    .catch((err: Error) => callback({ code: status.UNAVAILABLE, details: err.message }));
}

// Same server options as the broker's gRPC server (src/server/grpc-server.ts).
const server = new Server({
  "grpc.max_receive_message_length": 4 * 1024 * 1024,
  "grpc.max_send_message_length": 4 * 1024 * 1024,
  "grpc.keepalive_permit_without_calls": 1,
});
server.addService(ProxyServiceService, {
  proxy,
  proxyStream: (call: ServerDuplexStream<unknown, unknown>) => call.destroy(Object.assign(new Error("not in the floor relay"), { code: status.UNIMPLEMENTED })),
});
const port = await new Promise<number>((resolve, reject) =>
  server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
);
process.send({ address: `127.0.0.1:${port}` });

const stop = () => {
  server.forceShutdown();
  void agent.close().finally(() => process.exit(0));
};
process.on("disconnect", stop);
process.on("SIGTERM", stop);
