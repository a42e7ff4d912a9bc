import type { ApprovalDecisionRecord, ApprovalRecord, ApprovalRepository, ApprovalUseRecord } from "../approval-repository.js";

/** In-memory approvals (dev mode); same contract as the MongoDB implementation. */
export class MemoryApprovals implements ApprovalRepository {
  private readonly approvals = new Map<string, ApprovalRecord>();
  private readonly decisions = new Map<string, ApprovalDecisionRecord>();
  private readonly uses = new Map<string, ApprovalUseRecord>();

  async insert(a: ApprovalRecord) {
    if (this.approvals.has(a.id)) throw new Error(`approval ${a.id} exists`);
    this.approvals.set(a.id, structuredClone(a));
  }
  async get(id: string) {
    const a = this.approvals.get(id);
    return a && structuredClone(a);
  }
  async list(tenant: string, limit: number) {
    return [...this.approvals.values()]
      .filter((a) => a.tenant === tenant)
      .sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime() || b.id.localeCompare(a.id))
      .slice(0, limit)
      .map((a) => structuredClone(a));
  }
  async decide(d: ApprovalDecisionRecord) {
    if (this.decisions.has(d.id)) return false;
    this.decisions.set(d.id, structuredClone(d));
    return true;
  }
  async decision(id: string) {
    const d = this.decisions.get(id);
    return d && structuredClone(d);
  }
  async use(u: ApprovalUseRecord) {
    if (this.uses.has(u.id)) return false;
    this.uses.set(u.id, structuredClone(u));
    return true;
  }
  async used(id: string) {
    const u = this.uses.get(id);
    return u && structuredClone(u);
  }
}
