/** App-wide approvals, collected from the moment the app connects (any page may be open). */

import { connection } from "../app/connection";
import { Store } from "../app/store";
import { onRequested, onResolved, type ApprovalEntry, type Decision } from "./model";

export const approvals = new Store<ApprovalEntry[]>([]);

connection.onEvent("exec.approval.requested", (payload) =>
  approvals.update((list) => onRequested(list, payload, Date.now())),
);
connection.onEvent("exec.approval.resolved", (payload) =>
  approvals.update((list) => onResolved(list, payload, Date.now())),
);

export async function resolveApproval(id: string, decision: Decision): Promise<void> {
  await connection.request("exec.approval.resolve", { id, decision });
  // The broadcast follows; mark it now so the card leaves at once.
  approvals.update((list) => onResolved(list, { id, decision, resolvedBy: "you" }, Date.now()));
}
