import type { Collection, Db } from "mongodb";
import type { ApprovalDecisionRecord, ApprovalRecord, ApprovalRepository, ApprovalUseRecord } from "../approval-repository.js";
import { COLLECTIONS, insertOnce } from "./collections.js";

type Doc<T extends { id: string }> = Omit<T, "id"> & { _id: string };

const fromDoc = <T extends { id: string }>(doc: Doc<T> | null): T | undefined => {
  if (!doc) return undefined;
  const { _id, ...rest } = doc;
  return { id: _id, ...rest } as unknown as T;
};

/**
 * Approvals on MongoDB/FerretDB: every lookup is by `_id`; the decision and the use are insert-once documents in their
 * own collections (a duplicate key means someone else decided or used it first).
 */
export class MongoApprovals implements ApprovalRepository {
  private readonly approvals: Collection<Doc<ApprovalRecord>>;
  private readonly decisions: Collection<Doc<ApprovalDecisionRecord>>;
  private readonly uses: Collection<Doc<ApprovalUseRecord>>;

  constructor(db: Db) {
    this.approvals = db.collection(COLLECTIONS.approvals);
    this.decisions = db.collection(COLLECTIONS.approvalDecisions);
    this.uses = db.collection(COLLECTIONS.approvalUses);
  }

  async insert({ id, ...rest }: ApprovalRecord) {
    await this.approvals.insertOne({ _id: id, ...rest });
  }
  async get(id: string) {
    return fromDoc<ApprovalRecord>(await this.approvals.findOne({ _id: id }));
  }
  async list(tenant: string, limit: number) {
    const docs = await this.approvals.find({ tenant }).sort({ createdAt: -1, _id: -1 }).limit(limit).toArray();
    return docs.map((d) => fromDoc<ApprovalRecord>(d)!);
  }
  decide({ id, ...rest }: ApprovalDecisionRecord) {
    return insertOnce(this.decisions, { _id: id, ...rest });
  }
  async decision(id: string) {
    return fromDoc<ApprovalDecisionRecord>(await this.decisions.findOne({ _id: id }));
  }
  use({ id, ...rest }: ApprovalUseRecord) {
    return insertOnce(this.uses, { _id: id, ...rest });
  }
  async used(id: string) {
    return fromDoc<ApprovalUseRecord>(await this.uses.findOne({ _id: id }));
  }

  static async ensureIndexes(db: Db): Promise<void> {
    await db.collection(COLLECTIONS.approvals).createIndex({ tenant: 1, createdAt: -1 });
  }
}
