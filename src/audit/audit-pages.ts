import { CapvaultError } from "../errors/capvault-error.js";
import type { AuditRecord } from "../store/records.js";
import type { AuditRepository } from "../store/repositories.js";

export interface AuditPageRequest {
  tenant: string;
  limit: number;
  /** Only this chain. */
  writer?: string;
  /** Start after this sequence, in `writer`'s chain or the first chain. */
  afterSequence?: number;
  /** A previous page's nextPageToken (wins over afterSequence). */
  pageToken?: string;
}

export interface AuditPage {
  events: AuditRecord[];
  /** Where the next page starts; "" when this page is empty. */
  nextPageToken: string;
}

interface Position {
  writer: string;
  after: number;
}

/**
 * One page of a tenant's trail: chain by chain (writers in start order), each chain in sequence order. Each event is
 * read by its key, so a page costs the same however long the trail is.
 */
export async function listAuditPage(repository: AuditRepository, request: AuditPageRequest): Promise<AuditPage> {
  const writers = request.writer !== undefined && request.writer !== "" ? [request.writer] : (await repository.writers(request.tenant)).map((w) => w.writer);
  if (!writers.length) return { events: [], nextPageToken: "" };
  const start = request.pageToken ? decodeToken(request.pageToken) : { writer: writers[0], after: request.afterSequence ?? 0 };
  let index = writers.indexOf(start.writer);
  if (index < 0) throw new CapvaultError("INVALID_REQUEST", "page_token names a chain this listing does not have");
  let after = start.after;
  const events: AuditRecord[] = [];
  for (;;) {
    const page = await repository.listChain(request.tenant, writers[index], after, request.limit - events.length);
    events.push(...page);
    if (page.length) after = page[page.length - 1].sequence;
    if (events.length >= request.limit || index === writers.length - 1) break;
    index++;
    after = 0;
  }
  const last = events[events.length - 1];
  return { events, nextPageToken: last ? encodeToken({ writer: last.writer, after: last.sequence }) : "" };
}

function encodeToken(position: Position): string {
  return Buffer.from(JSON.stringify([position.writer, position.after])).toString("base64url");
}

function decodeToken(token: string): Position {
  try {
    const [writer, after] = JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as unknown[];
    if (typeof writer === "string" && Number.isSafeInteger(after) && (after as number) >= 0) return { writer, after: after as number };
  } catch {
    // fall through
  }
  throw new CapvaultError("INVALID_REQUEST", "page_token is not one this broker issued");
}
