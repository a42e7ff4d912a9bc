/** capvault's TypeScript client for agents. See docs/client.md. */
export { connect, toHttpRequest, type CapvaultClient, type ClientOptions, type FetchRequest, type FetchResponse } from "./capvault-client.js";
export { CapvaultClientError } from "./client-error.js";
