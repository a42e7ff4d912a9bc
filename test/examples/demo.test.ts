import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { REPO_ROOT } from "../support/broker-process.js";

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** `npm run demo` as a person would run it (npm test has already built dist/). */
function runDemo(timeoutMs: number): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn("npm", ["run", "--silent", "demo"], {
      cwd: REPO_ROOT,
      env: { ...process.env, NO_COLOR: "1" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    // The demo cleans up on SIGTERM (broker, servers, temp folder) before exiting.
    const timer = setTimeout(() => child.kill("SIGTERM"), timeoutMs);
    child.once("error", reject);
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

describe("npm run demo", () => {
  it("tells the whole story against a real broker process and exits 0, leaving nothing behind", async () => {
    const run = await runDemo(100_000);
    const why = `exit ${run.code ?? run.signal}\n--- stdout ---\n${run.stdout}\n--- stderr ---\n${run.stderr}`;
    expect(run.code, why).toBe(0);
    const o = run.stdout;

    // 1. the connection, through the real authorization-code flow with PKCE
    expect(o).toContain("code_challenge_method=S256");
    expect(o).toMatch(/alice@example\.com is now connected to dev/);
    expect(o).toMatch(/connection conn_\S+: ACTIVE, user alice/);
    // 2-3. mint, attenuation and Inspect's blocks
    expect(o).toContain('right("conn_');
    expect(o).toContain('check if path($path), ($path + "/").starts_with("/repos/acme/widgets/")');
    // 4. allowed, without the OAuth token reaching the agent
    expect(o).toMatch(/ALLOWED\s+HTTP 200/);
    expect(o).toContain("Widgets squeak when turned clockwise");
    expect(o).toContain("the agent never saw the OAuth token");
    // 5. denied, with the reason and the failing check
    expect(o).toMatch(/DENIED\s+CAPABILITY_CHECK_FAILED/);
    expect(o).toMatch(/failing check: block 1, check 0: check if path/);
    expect(o).toMatch(/DENIED\s+NO_MATCHING_GRANT/);
    expect(o).toContain("the demo API received no request for either");
    // 6. a DELETE held for approval, approved on the page through the signed webhook's link, used once
    expect(o).toMatch(/HELD\s+APPROVAL_REQUIRED/);
    expect(o).toContain("The approval inbox received the signed event (signature verified)");
    expect(o).toContain('after Approve it says: "Approved"');
    expect(o).toMatch(/ALLOWED\s+HTTP 204/);
    expect(o).toMatch(/DENIED\s+APPROVAL_USED/);
    expect(o).toContain("the demo API received exactly one DELETE");
    // 7. revoked, while the orchestrator still works
    expect(o).toMatch(/DENIED\s+CAPABILITY_REVOKED/);
    expect(o).toMatch(/orchestrator → GET \/repos\/acme\/widgets\/issues\n\s+ALLOWED\s+HTTP 200/);
    // 8. the audit trail and its verification
    expect(o).toMatch(/approval_held\s+DELETE \/repos\/acme\/widgets\/branches/);
    expect(o).toMatch(/approval_used\s+DELETE \/repos\/acme\/widgets\/branches/);
    expect(o).toMatch(/proxy\s+GET \/repos\/acme\/secrets\s+deny\s+CAPABILITY_CHECK_FAILED/);
    expect(o).toMatch(/proxy\s+GET \/repos\/acme\/widgets\/issues\s+deny\s+CAPABILITY_REVOKED/);
    expect(o).toMatch(/Audit chain verified \(AdminService\.VerifyAudit\): \d+ events/);
    // clean-up
    expect(o).toMatch(/broker \(pid \d+\) stopped: exit code 0/);
    expect(o).toMatch(/Demo complete in [\d.]+ s\./);
    expect(run.stderr).not.toContain("DEMO FAILED");
    const tempDir = /temp folder (\S+) removed/.exec(o)?.[1];
    expect(tempDir).toBeDefined();
    expect(existsSync(tempDir!)).toBe(false);
  }, 120_000);
});
