"""One MCP session with `capvault mcp`, driven by the official Python `mcp` client (test/mcp/capability-tools.test.ts).

Reads from the environment: CAPVAULT_CLI (the capvault entry point, run with node), CAPVAULT_TOKEN and
CAPVAULT_GRPC_ADDR (handed to the server), MCP_CONNECTION, MCP_ALLOWED_PATH, MCP_DENIED_PATH. Lists the tools, calls
describe_capability, one allowed and one denied http_request, and prints what it saw as one JSON object; the test
asserts on it. Every message received is also printed (under "messages"), so the test can search them for secrets.
"""
import asyncio
import json
import os
import sys

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client


def result_of(r):
    return {
        "isError": bool(getattr(r, "is_error", getattr(r, "isError", False))),
        "text": "".join(getattr(c, "text", "") for c in r.content),
        "structured": getattr(r, "structured_content", getattr(r, "structuredContent", None)),
    }


async def main() -> None:
    env = {k: os.environ[k] for k in ("PATH", "CAPVAULT_TOKEN", "CAPVAULT_GRPC_ADDR")}
    params = StdioServerParameters(command="node", args=[os.environ["CAPVAULT_CLI"], "mcp"], env=env)
    connection = os.environ["MCP_CONNECTION"]
    out = {}
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            tools = await session.list_tools()
            out["tools"] = sorted(t.name for t in tools.tools)
            out["describe"] = result_of(await session.call_tool("describe_capability", {}))
            out["allowed"] = result_of(
                await session.call_tool("http_request", {"connection": connection, "method": "GET", "path": os.environ["MCP_ALLOWED_PATH"]})
            )
            out["denied"] = result_of(
                await session.call_tool("http_request", {"connection": connection, "method": "GET", "path": os.environ["MCP_DENIED_PATH"]})
            )
    json.dump(out, sys.stdout, default=str)


asyncio.run(main())
