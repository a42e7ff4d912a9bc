import { CapvaultError } from "../errors/capvault-error.js";
import { isJsonContentType } from "./body-fields.js";
import type { CanonicalHeader } from "./canonical-headers.js";

/**
 * End-to-end headers that say how the body is framed, encoded and read. The body fields a capability is checked
 * against are read under these headers, so the upstream must parse the body under exactly the same ones: none may be
 * removed, added or changed between authorization and the upstream call.
 */
export const BODY_HEADERS: ReadonlySet<string> = new Set(["content-type", "content-encoding", "content-length", "transfer-encoding"]);

/**
 * Refuse (HEADER_INVALID) a Connection or Proxy-Connection header that lists one of {@link BODY_HEADERS}.
 *
 * The hop-by-hop filter removes every name a Connection header lists, so `Connection: content-type` would have the
 * body's fields authorized as JSON while the upstream gets no Content-Type at all and may read the same bytes as a
 * form (`{"channel":"C0123","x":"&channel=C999&"}`). Refused rather than ignored for that name: RFC 9110 section
 * 7.6.1 forbids listing an end-to-end field as a connection option, so no correct client sends this, and a refusal
 * leaves no question about what the upstream saw (the agent learns at once; nothing depends on which of two filters
 * runs first). The reason is HEADER_INVALID (INVALID_ARGUMENT), like every other refused header, with the header and
 * the option in the metadata.
 */
export function assertConnectionKeepsBodyHeaders(headers: readonly CanonicalHeader[]): void {
  for (const h of headers) {
    if (h.name !== "connection" && h.name !== "proxy-connection") continue;
    for (const option of h.value.split(",")) {
      const name = option.trim().toLowerCase();
      if (BODY_HEADERS.has(name)) {
        throw new CapvaultError("HEADER_INVALID", `a ${h.name} header may not list ${name}: it is end-to-end, and the body is authorized under it`, {
          metadata: { header: h.name, option: name },
        });
      }
    }
  }
}

/**
 * Refuse (BODY_INVALID) a Content-Encoding on a body whose fields are read for authorization (a JSON content type
 * and a non-empty body). The broker reads the fields of the bytes as they are; an upstream that honours the
 * Content-Encoding would decode them first and act on fields nobody authorized (brotli, for one, has no magic
 * number, so "valid JSON" says nothing about what the decoded bytes hold). Any Content-Encoding is refused, even
 * `identity`: it is not a content coding a request needs, and one rule is easier to trust than a list.
 * Bodies of other types carry no fields, so their encoding is the upstream's business.
 */
export function assertBodyReadAsSent(headers: readonly CanonicalHeader[], contentType: string | undefined, body: Uint8Array): void {
  if (body.length === 0 || !isJsonContentType(contentType)) return;
  if (headers.some((h) => h.name === "content-encoding")) {
    throw new CapvaultError("BODY_INVALID", "a JSON body may not carry a Content-Encoding: its fields are authorized as sent, undecoded", {
      metadata: { header: "content-encoding" },
    });
  }
}
