/** One revoked block, in the tenant whose operator revoked it. */
export interface RevokedBlock {
  tenant: string;
  /** The block's revocation id (hex, any case). */
  id: string;
}

/**
 * The revoked block revocation ids (hex), per tenant. Every block of a token has one, and derived tokens share their
 * parents' ids, so revoking a block revokes everything attenuated from it. A revocation only counts against tokens of
 * the tenant that recorded it: an operator of one tenant who learns another tenant's revocation id cannot revoke that
 * tenant's capabilities. The broker keeps this set current (by polling its store) and checks every authorization's
 * ids against it.
 */
export class RevocationSet {
  private byTenant = new Map<string, Set<string>>();

  constructor(blocks: Iterable<RevokedBlock> = []) {
    this.add(blocks);
  }

  /** Add revoked blocks. */
  add(blocks: Iterable<RevokedBlock>): void {
    for (const b of blocks) {
      let ids = this.byTenant.get(b.tenant);
      if (!ids) this.byTenant.set(b.tenant, (ids = new Set()));
      ids.add(normalise(b.id));
    }
  }

  /** Replace the whole set (after a full reload). */
  replace(blocks: Iterable<RevokedBlock>): void {
    this.byTenant = new Map();
    this.add(blocks);
  }

  /** Whether one id is revoked in `tenant`. */
  has(tenant: string, id: string): boolean {
    return this.byTenant.get(tenant)?.has(normalise(id)) ?? false;
  }

  /** Whether any of the revocation ids of a token of `tenant` is revoked. */
  isRevoked(tenant: string, ids: Iterable<string>): boolean {
    const revoked = this.byTenant.get(tenant);
    if (!revoked) return false;
    for (const id of ids) if (revoked.has(normalise(id))) return true;
    return false;
  }

  /** Number of revoked blocks, over all tenants. */
  get size(): number {
    let n = 0;
    for (const ids of this.byTenant.values()) n += ids.size;
    return n;
  }
}

function normalise(id: string): string {
  return id.toLowerCase();
}
