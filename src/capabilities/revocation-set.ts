/**
 * The set of revoked block revocation ids (hex). Every block of a token has one, and derived tokens share their
 * parents' ids, so revoking a block revokes everything attenuated from it. The broker keeps this set current (e.g. by
 * polling its store) and checks every authorization's ids against it.
 */
export class RevocationSet {
  private ids = new Set<string>();

  constructor(ids: Iterable<string> = []) {
    this.add(ids);
  }

  /** Add revoked ids. */
  add(ids: Iterable<string>): void {
    for (const id of ids) this.ids.add(normalise(id));
  }

  /** Replace the whole set (after a full reload). */
  replace(ids: Iterable<string>): void {
    const next = new Set<string>();
    for (const id of ids) next.add(normalise(id));
    this.ids = next;
  }

  /** Whether one id is revoked. */
  has(id: string): boolean {
    return this.ids.has(normalise(id));
  }

  /** Whether any of a token's revocation ids is revoked. */
  isRevoked(ids: Iterable<string>): boolean {
    for (const id of ids) if (this.ids.has(normalise(id))) return true;
    return false;
  }

  /** Number of revoked ids. */
  get size(): number {
    return this.ids.size;
  }
}

function normalise(id: string): string {
  return id.toLowerCase();
}
