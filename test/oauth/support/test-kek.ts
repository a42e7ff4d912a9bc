/** The KEK every test broker (and worker process) shares: base64 of 32 bytes, test-only. */
export const TEST_KEK = Buffer.alloc(32, 7).toString("base64");
