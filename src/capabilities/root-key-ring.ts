import { CapvaultError } from "../errors/capvault-error.js";
import type { RootKeyRecord } from "../store/root-key-repository.js";
import type { Store } from "../store/store.js";
import type { SecretContext, Vault } from "../vault/vault.js";
import { generateRootKey, selectSigningKey, type RootPublicKey, type SigningKey } from "./root-keys.js";

/** Root private keys are sealed like every other secret, bound to this context. */
export function rootKeyContext(id: number): SecretContext {
  return { tenant: "_capvault", record: `root-key:${id}`, provider: "", field: "root_private_key" };
}

/**
 * The broker's root keys, persisted in the store with their private halves sealed by the vault. The first broker to
 * start creates key 1 (insert-once: concurrent first starts end up with one key). New tokens are signed by the newest
 * non-retired key; older non-retired keys still verify. `reload()` picks up keys added or retired elsewhere; the broker
 * calls it when its revocation poller reads a root key change (rotate and retire announce theirs in the log).
 */
export class RootKeyRing {
  private publicKeys: RootPublicKey[] = [];
  private created = new Map<number, Date>();
  private signing: SigningKey | undefined;

  private constructor(
    private readonly store: Store,
    private readonly vault: Vault,
  ) {}

  static async open(store: Store, vault: Vault): Promise<RootKeyRing> {
    const ring = new RootKeyRing(store, vault);
    if (!(await store.rootKeys.list()).length) await ring.create(1);
    await ring.reload();
    return ring;
  }

  /** Add a new root key (the next id) that signs from now on. */
  async rotate(): Promise<RootPublicKey> {
    const keys = await this.store.rootKeys.list();
    const id = Math.max(0, ...keys.map((k) => k.id)) + 1;
    await this.create(id);
    await this.reload();
    // Every broker's revocation poller sees this and reloads its keys (revocation-poller.ts).
    await this.store.revocations.logRootKeyChange();
    return this.publicKeys.find((k) => k.id === id)!;
  }

  /**
   * Retire a root key: tokens it signed stop verifying. The change goes into the revocation log too, so every running
   * broker drops the key within its revocation bound (a broker that cannot read the log refuses every capability).
   */
  async retire(id: number): Promise<void> {
    await this.store.rootKeys.retire(id, new Date());
    await this.store.revocations.logRootKeyChange();
    await this.reload();
  }

  /** Re-read keys from the store. */
  async reload(): Promise<void> {
    const records = await this.store.rootKeys.list();
    this.publicKeys = records.map(toPublic);
    this.created = new Map(records.map((r) => [r.id, r.createdAt]));
    const newest = selectSigningKey(this.publicKeys);
    if (this.signing?.id !== newest.id) {
      const record = records.find((r) => r.id === newest.id)!;
      const privateKey = await this.vault.open(record.sealedPrivateKey, rootKeyContext(record.id));
      this.signing = { id: record.id, privateKeyHex: privateKey.toString("utf8") };
    }
  }

  /** Every root public key, retired ones marked. */
  keys(): readonly RootPublicKey[] {
    return this.publicKeys;
  }

  /** When a key was created (ListPublicKeys reports it). */
  createdAt(id: number): Date | undefined {
    return this.created.get(id);
  }

  /** The key that signs new tokens. */
  signingKey(): SigningKey {
    if (!this.signing) throw new CapvaultError("INTERNAL", "no root key loaded");
    return this.signing;
  }

  private async create(id: number): Promise<void> {
    const key = generateRootKey(id);
    const record: RootKeyRecord = {
      id,
      algorithm: "ed25519",
      publicKeyHex: key.publicKeyHex,
      sealedPrivateKey: await this.vault.seal(key.privateKeyHex, rootKeyContext(id)),
      createdAt: new Date(),
    };
    // Losing the race means another broker created this id: use theirs.
    await this.store.rootKeys.insert(record);
  }
}

function toPublic(r: RootKeyRecord): RootPublicKey {
  return { id: r.id, publicKeyHex: r.publicKeyHex, algorithm: "ed25519", ...(r.retiredAt ? { retired: true } : {}) };
}
