import type { SealedSecret } from "../vault/vault.js";

/** A capability root key pair. The private half is sealed by the vault; the public half is public. */
export interface RootKeyRecord {
  /** The Biscuit root key id carried in tokens. */
  id: number;
  algorithm: "ed25519";
  publicKeyHex: string;
  sealedPrivateKey: SealedSecret;
  createdAt: Date;
  /** Set when the key may no longer verify tokens. */
  retiredAt?: Date;
}

/** Root keys: insert-once by id (two brokers creating key 1 at once end up with one), listed in id order. */
export interface RootKeyRepository {
  insert(key: RootKeyRecord): Promise<boolean>;
  list(): Promise<RootKeyRecord[]>;
  retire(id: number, at: Date): Promise<boolean>;
}
