/** capvault's TypeScript client for agents. See docs/client.md. */
export {
  connect,
  STREAM_CHUNK_BYTES,
  toHttpRequest,
  type CapvaultClient,
  type ClientOptions,
  type FetchRequest,
  type FetchResponse,
  type StreamBody,
  type StreamRequest,
  type StreamResponse,
} from "./capvault-client.js";
export { CapvaultClientError } from "./client-error.js";
export {
  attenuateOffline,
  attenuateOfflineDetailed,
  type OfflineAttenuateOptions,
  type OfflineAttenuation,
  type RootPublicKeyInfo,
} from "./attenuate-offline.js";
export type { Restriction as OfflineRestriction } from "../capabilities/vocabulary.js";
