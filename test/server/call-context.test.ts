import { EventEmitter } from "node:events";
import { Metadata } from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { CapvaultError } from "../../src/errors/capvault-error.js";
import { callContext, type ServerCall } from "../../src/server/call-context.js";

/** The part of a grpc-js server call that callContext reads (the real server is in grpc-server.test.ts). */
function fakeCall(deadline: number | Date = Infinity): ServerCall {
  return Object.assign(new EventEmitter(), { metadata: new Metadata(), getDeadline: () => deadline, getPeer: () => "ipv4:127.0.0.1:1" }) as unknown as ServerCall;
}

describe("callContext", () => {
  it("cancellation and signal abort together, with the same reason, whichever is read first", () => {
    const early = fakeCall();
    const a = callContext(early);
    const signal = a.signal; // made before the cancel
    early.emit("cancelled");
    expect(a.cancellation.aborted).toBe(true);
    expect(signal.aborted).toBe(true);
    expect(CapvaultError.is(signal.reason, "CANCELLED")).toBe(true);
    expect(a.cancellation.reason).toBe(signal.reason);

    const late = fakeCall();
    const b = callContext(late);
    late.emit("cancelled");
    expect(b.signal.aborted).toBe(true); // made after the cancel
    expect(b.signal.reason).toBe(b.cancellation.reason);
  });

  it("a cancellation once the deadline has passed is DEADLINE_EXCEEDED, before it CANCELLED; nothing once finished", async () => {
    // grpc-js ends a call at its deadline itself, then emits "cancelled" (the real server: grpc-server.test.ts).
    const late = fakeCall(Date.now() + 30);
    const ctx = callContext(late);
    await new Promise((resolve) => setTimeout(resolve, 60));
    late.emit("cancelled");
    expect(CapvaultError.is(ctx.cancellation.reason, "DEADLINE_EXCEEDED")).toBe(true);
    expect(ctx.signal.aborted).toBe(true);

    const early = fakeCall(Date.now() + 60_000);
    const before = callContext(early);
    early.emit("cancelled");
    expect(CapvaultError.is(before.cancellation.reason, "CANCELLED")).toBe(true);

    const call = fakeCall(Date.now() + 50);
    const done = callContext(call);
    done.finished();
    call.emit("cancelled"); // grpc-js emits it after a normal answer too
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(done.cancellation.aborted).toBe(false);
    expect(done.signal.aborted).toBe(false);
  });
});
