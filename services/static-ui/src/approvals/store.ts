/** App-wide approvals, collected from the moment the app connects (any page may be open). */

import { connection } from "../app/connection";
import { Store } from "../app/store";
import { asGatewayError } from "../gateway/errors";
import { onRequested, onResolved, type ApprovalEntry, type Decision } from "./model";

export const approvals = new Store<ApprovalEntry[]>([]);

connection.onEvent("exec.approval.requested", (payload) =>
  approvals.update((list) => onRequested(list, payload, Date.now())),
);
connection.onEvent("exec.approval.resolved", (payload) =>
  approvals.update((list) => onResolved(list, payload, Date.now())),
);

export async function resolveApproval(id: string, decision: Decision): Promise<void> {
  try {
    await connection.request("exec.approval.resolve", { id, decision });
  } catch (err) {
    const error = asGatewayError(err);
    // Decided elsewhere or expired while this page was away: drop the stale card.
    if (error.is("CONFLICT") || error.is("NOT_FOUND")) {
      approvals.update((list) => onResolved(list, { id, decision: "already resolved" }, Date.now()));
      return;
    }
    throw error;
  }
  // The broadcast follows; mark it now so the card leaves at once.
  approvals.update((list) => onResolved(list, { id, decision, resolvedBy: "you" }, Date.now()));
}
