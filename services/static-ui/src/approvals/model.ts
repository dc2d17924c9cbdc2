/**
 * Exec approvals seen on this connection. The queue is loaded with `exec.approvals.pending`
 * on every connect (so a reload still shows it), then kept by `exec.approval.requested` and
 * dropped on `exec.approval.resolved` or when they expire (the server then denies them). Pure.
 */

export type Decision = "allow-once" | "allow-always" | "deny";

export interface ApprovalRequest {
  id: string;
  command: string;
  argv?: string[];
  cwd?: string;
  nodeId?: string;
  agentId?: string;
  sessionKey?: string;
  expiresAtMs?: number;
}

export interface ApprovalEntry {
  request: ApprovalRequest;
  receivedAt: number;
  resolved?: { decision: string; resolvedBy?: string; at: number };
}

type Rec = Record<string, unknown>;
const isRec = (v: unknown): v is Rec => typeof v === "object" && v !== null && !Array.isArray(v);
const str = (v: unknown) => (typeof v === "string" ? v : undefined);

/** The request in an event payload: flat, or nested under `request` beside `id`. */
export function readRequest(payload: unknown): ApprovalRequest | undefined {
  if (!isRec(payload)) return undefined;
  const inner = isRec(payload.request) ? { ...payload.request, ...payload } : payload;
  const id = str(inner.id);
  if (!id) return undefined;
  const argv = Array.isArray(inner.argv) ? inner.argv.map(String) : undefined;
  const command = str(inner.command) ?? (argv ? argv.join(" ") : "");
  const req: ApprovalRequest = { id, command };
  if (argv) req.argv = argv;
  for (const key of ["cwd", "nodeId", "agentId", "sessionKey"] as const) {
    const value = str(inner[key]);
    if (value) req[key] = value;
  }
  if (typeof inner.expiresAtMs === "number") req.expiresAtMs = inner.expiresAtMs;
  return req;
}

const HISTORY = 50;

export function onRequested(list: ApprovalEntry[], payload: unknown, now: number): ApprovalEntry[] {
  const request = readRequest(payload);
  if (!request || list.some((e) => e.request.id === request.id)) return list;
  return [...list, { request, receivedAt: now }];
}

/**
 * Merge an `exec.approvals.pending` answer: requests not yet known are added. A known pending
 * entry received before the list was asked for (`askedAt`) that the server no longer lists
 * was decided while this page was away; it is marked resolved so the card leaves. Entries
 * received later are newer than the answer and stay as they are.
 */
export function onPendingList(
  list: ApprovalEntry[],
  result: unknown,
  askedAt: number,
  now: number,
): ApprovalEntry[] {
  if (!isRec(result) || !Array.isArray(result.approvals)) return list;
  const listed = result.approvals.map(readRequest).filter((r): r is ApprovalRequest => r !== undefined);
  const ids = new Set(listed.map((r) => r.id));
  let next = list.map((e) =>
    e.resolved || ids.has(e.request.id) || e.receivedAt >= askedAt
      ? e
      : { ...e, resolved: { decision: "resolved elsewhere", at: now } },
  );
  for (const request of listed) {
    if (!next.some((e) => e.request.id === request.id)) next = [...next, { request, receivedAt: now }];
  }
  return trim(next);
}

export function onResolved(list: ApprovalEntry[], payload: unknown, now: number): ApprovalEntry[] {
  if (!isRec(payload)) return list;
  const id = str(payload.id);
  const decision = str(payload.decision) ?? "resolved";
  if (!id) return list;
  const resolvedBy = str(payload.resolvedBy);
  const resolved = resolvedBy ? { decision, resolvedBy, at: now } : { decision, at: now };
  let found = false;
  const next = list.map((e) => {
    if (e.request.id !== id || e.resolved) return e;
    found = true;
    return { ...e, resolved };
  });
  return found ? trim(next) : list;
}

/** Keep every pending entry and the newest resolved ones. */
function trim(list: ApprovalEntry[]): ApprovalEntry[] {
  const resolved = list.filter((e) => e.resolved);
  if (resolved.length <= HISTORY) return list;
  const drop = new Set(resolved.slice(0, resolved.length - HISTORY));
  return list.filter((e) => !drop.has(e));
}

export function isExpired(entry: ApprovalEntry, now: number): boolean {
  return entry.request.expiresAtMs !== undefined && entry.request.expiresAtMs <= now;
}

export function pendingApprovals(list: ApprovalEntry[], now: number): ApprovalEntry[] {
  return list.filter((e) => !e.resolved && !isExpired(e, now));
}
