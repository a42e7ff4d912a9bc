import type { AuditRecord } from "./records.js";

/** The events of each (tenant, writer) chain, each chain in sequence order. */
export function groupByChain(events: AuditRecord[]): AuditRecord[][] {
  const chains = new Map<string, AuditRecord[]>();
  for (const e of events) {
    const key = `${e.tenant}\u0000${e.writer}`;
    const chain = chains.get(key);
    if (chain) chain.push(e);
    else chains.set(key, [e]);
  }
  return [...chains.values()].map((chain) => chain.sort((a, b) => a.sequence - b.sequence));
}
