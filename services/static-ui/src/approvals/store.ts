/** App-wide approvals, collected from the moment the app connects (any page may be open). */

import { connection } from "../app/connection";
import { Store } from "../app/store";
import { asGatewayError } from "../gateway/errors";
import { onPendingList, onRequested, onResolved, type ApprovalEntry, type Decision } from "./model";

export const approvals = new Store<ApprovalEntry[]>([]);

/** The queue as the server holds it: on every connect and when events were missed. */
export async function loadPending(): Promise<void> {
  if (!connection.hasScope("operator.approvals")) return;
  const askedAt = Date.now();
  try {
    const result = await connection.request("exec.approvals.pending", {});
    approvals.update((list) => onPendingList(list, result, askedAt, Date.now()));
  } catch {
    // Disconnected again or an older gateway without the method: events still fill the queue.
  }
}

let wasConnected = false;
connection.state.subscribe((state) => {
  const connected = state.status === "connected";
  if (connected && !wasConnected) void loadPending();
  wasConnected = connected;
});
connection.onRefetch(() => void loadPending());

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
