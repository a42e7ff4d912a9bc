import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { z } from "zod";
import type { CapvaultClient, FetchRequest } from "../client/capvault-client.js";
import { CapvaultClientError } from "../client/client-error.js";
import { InspectResponse } from "../gen/capvault/v1/capability.js";

/** Largest response body returned to the model whole; a longer one is cut there, and the result says so. */
export const MAX_TOOL_BODY_BYTES = 64 * 1024;

const REQUEST_INPUT = {
  connection: z.string().min(1).describe("The connection id (from describe_capability's grants)"),
  method: z.string().min(1).describe("HTTP method, e.g. GET"),
  path: z.string().min(1).describe("Path under the provider's API, e.g. /repos/acme/widgets/issues (never a URL)"),
  query: z.record(z.string(), z.string()).optional().describe("Query parameters"),
  headers: z.record(z.string(), z.string()).optional().describe("Request headers (credentials are the broker's: never send one)"),
  body: z.unknown().optional().describe("Request body: a JSON value (sent as application/json), or a string sent as-is"),
  approval_id: z
    .string()
    .optional()
    .describe("When a request was held for a person's approval (APPROVAL_REQUIRED) and approved: its approval id, to repeat the identical request once"),
};

/**
 * The MCP server of `capvault mcp`: two tools over one capability, both plain broker calls. The process holds only the
 * capability (which it can narrow, never widen); the OAuth token stays in the broker, which makes every request
 * itself, with its checks, policies and audit.
 *
 * - describe_capability: what the capability allows (the broker's Inspect answer, plus its grants in short).
 * - http_request: one request through Proxy; a refusal is a tool error naming the reason and the failing check or
 *   policy (from an Authorize dry run), so the model can correct itself.
 */
export function capabilityMcpServer(client: CapvaultClient, version: string): McpServer {
  const server = new McpServer({ name: "capvault", version });

  server.registerTool(
    "describe_capability",
    {
      title: "What this capability allows",
      description:
        "Describes the capability this server acts with: tenant, subject, expiry, the grants of its first block " +
        "(connection, HTTP method, path prefix) and the checks every later block adds (narrower paths, methods, " +
        "query and body constraints, expiry). Every request must satisfy all of them.",
      annotations: { readOnlyHint: true, openWorldHint: false },
    },
    async (): Promise<CallToolResult> => {
      try {
        const inspected = await client.inspect();
        const described = { grants: grantsOf(inspected), inspect: InspectResponse.toJSON(inspected) as Record<string, unknown> };
        return { content: [{ type: "text", text: JSON.stringify(described, null, 2) }], structuredContent: described };
      } catch (err) {
        return refusal(err);
      }
    },
  );

  server.registerTool(
    "http_request",
    {
      title: "HTTP request through capvault",
      description:
        "Sends one HTTP request to a connected account's provider API through the capvault broker, which checks it " +
        "against the capability, adds the user's credential and returns the answer (status, allowlisted headers, " +
        "body). Refused requests come back as errors naming the check or policy that refused them.",
      inputSchema: REQUEST_INPUT,
      annotations: { openWorldHint: true },
    },
    async (input): Promise<CallToolResult> => {
      const request: FetchRequest = {
        method: input.method,
        path: input.path,
        ...(input.query ? { query: input.query } : {}),
        ...(input.headers ? { headers: input.headers } : {}),
        ...(input.body === undefined ? {} : { body: typeof input.body === "string" ? input.body : (input.body as object) }),
        ...(input.approval_id ? { approvalId: input.approval_id } : {}),
      };
      try {
        const res = await client.fetch(input.connection, request);
        const answer = responseOf(res.status, res.headers, res.body);
        return {
          content: [{ type: "text", text: JSON.stringify(answer, null, 2) }],
          structuredContent: answer,
          ...(res.status >= 400 ? { isError: true } : {}),
        };
      } catch (err) {
        return refusal(err, await explain(client, input.connection, request));
      }
    },
  );
  return server;
}

/** The grants of the authority block: `right(connection, method, pathPrefix)` facts. */
function grantsOf(inspected: InspectResponse): Array<{ connection: string; method: string; pathPrefix: string }> {
  const authority = inspected.blocks.find((b) => b.index === 0);
  return (authority?.facts ?? [])
    .filter((f) => f.name === "right" && f.terms.length === 3)
    .map((f) => {
      const [connection, method, pathPrefix] = f.terms.map((t) => t.string ?? "");
      return { connection, method, pathPrefix };
    });
}

/** Status, headers and body for the model: JSON bodies parsed, text as text, anything long cut with a note. */
function responseOf(status: number, headers: Record<string, string>, body: Buffer): Record<string, unknown> {
  const truncated = body.length > MAX_TOOL_BODY_BYTES;
  const bytes = truncated ? body.subarray(0, MAX_TOOL_BODY_BYTES) : body;
  const text = bytes.toString("utf8");
  let value: unknown = text;
  if (!truncated && /json/i.test(headers["content-type"] ?? "")) {
    try {
      value = JSON.parse(text);
    } catch {
      // not JSON after all: the text
    }
  }
  return {
    status,
    headers,
    body: value,
    ...(truncated ? { truncated: `the body has ${body.length} bytes; only the first ${MAX_TOOL_BODY_BYTES} are shown` } : {}),
  };
}

/** The failing checks and policies of a refused request, from an Authorize dry run (none if that fails too). */
async function explain(client: CapvaultClient, connection: string, request: FetchRequest): Promise<string[]> {
  try {
    const dry = await client.authorize(connection, request);
    return dry.denials.map((d) =>
      d.policy ? `${d.reason}: policy ${d.policy}: ${d.rule}` : d.blockIndex >= 0 ? `${d.reason}: block ${d.blockIndex}, check ${d.checkIndex}: ${d.rule}` : `${d.reason}: ${d.rule}`,
    );
  } catch {
    return [];
  }
}

/** A broker refusal as a tool error: the stable reason, the broker's message, what refused it. */
function refusal(err: unknown, checks: string[] = []): CallToolResult {
  const reason = err instanceof CapvaultClientError ? err.reason : "INTERNAL";
  const message = err instanceof CapvaultClientError ? err.message : "the request could not be made";
  const failing = checks.length ? `\nrefused by:\n${checks.map((c) => `  ${c}`).join("\n")}` : "";
  // A call held for a person's approval: say how to go on (a person decides; then repeat it with approval_id).
  const approvalId = err instanceof CapvaultClientError ? err.metadata.approval_id : undefined;
  const held = approvalId
    ? `\nheld for approval ${approvalId}: a person must approve it (capvault approvals approve ${approvalId}, or the link sent to them); then repeat the identical request with approval_id`
    : "";
  return {
    isError: true,
    content: [{ type: "text", text: `${reason}: ${message}${failing}${held}` }],
    structuredContent: { reason, message, failing: checks, ...(approvalId ? { approvalId } : {}) },
  };
}
