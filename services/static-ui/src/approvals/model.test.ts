import { describe, expect, it } from "vitest";
import { onPendingList, onRequested, onResolved, pendingApprovals, readRequest } from "./model";

describe("approvals", () => {
  it("reads flat and nested request payloads", () => {
    expect(readRequest({ id: "a1", command: "rm -rf /tmp/x", cwd: "/", expiresAtMs: 10, sessionKey: "s" })).toEqual({
      id: "a1",
      command: "rm -rf /tmp/x",
      cwd: "/",
      sessionKey: "s",
      expiresAtMs: 10,
    });
    expect(readRequest({ id: "a2", request: { argv: ["ls", "-l"], agentId: "main" }, expiresAtMs: 5 })).toEqual({
      id: "a2",
      command: "ls -l",
      argv: ["ls", "-l"],
      agentId: "main",
      expiresAtMs: 5,
    });
    expect(readRequest({ command: "no id" })).toBeUndefined();
  });

  it("tracks pending requests until resolved or expired", () => {
    let list = onRequested([], { id: "a", command: "x", expiresAtMs: 1000 }, 0);
    list = onRequested(list, { id: "b", command: "y", expiresAtMs: 5000 }, 0);
    list = onRequested(list, { id: "a", command: "dup", expiresAtMs: 1000 }, 0);
    expect(list).toHaveLength(2);
    expect(pendingApprovals(list, 500).map((e) => e.request.id)).toEqual(["a", "b"]);
    expect(pendingApprovals(list, 1000).map((e) => e.request.id)).toEqual(["b"]);

    list = onResolved(list, { id: "b", decision: "allow-once", resolvedBy: "op" }, 600);
    expect(pendingApprovals(list, 600).map((e) => e.request.id)).toEqual(["a"]);
    expect(list[1]!.resolved).toEqual({ decision: "allow-once", resolvedBy: "op", at: 600 });
    expect(onResolved(list, { id: "zzz", decision: "deny" }, 1)).toBe(list);
  });

  it("loads the queue from exec.approvals.pending after a reload", () => {
    const listed = { approvals: [{ id: "p1", command: "make", createdAtMs: 1, expiresAtMs: 9000 }] };
    const list = onPendingList([], listed, 10, 20);
    expect(pendingApprovals(list, 20).map((e) => e.request)).toEqual([{ id: "p1", command: "make", expiresAtMs: 9000 }]);
    expect(onPendingList(list, { approvals: "nonsense" }, 30, 30)).toBe(list);
  });

  it("drops cards the list no longer holds, but not ones newer than the answer", () => {
    let list = onRequested([], { id: "old", command: "x" }, 5);
    list = onRequested(list, { id: "new", command: "y" }, 15);
    list = onPendingList(list, { approvals: [{ id: "other", command: "z" }] }, 10, 20);
    expect(pendingApprovals(list, 20).map((e) => e.request.id)).toEqual(["new", "other"]);
    expect(list.find((e) => e.request.id === "old")!.resolved).toEqual({ decision: "resolved elsewhere", at: 20 });
  });

  it("keeps only the newest 50 resolved entries", () => {
    let list: ReturnType<typeof onRequested> = [];
    for (let i = 0; i < 60; i++) {
      list = onRequested(list, { id: `r${i}`, command: "c" }, i);
      list = onResolved(list, { id: `r${i}`, decision: "deny" }, i);
    }
    list = onRequested(list, { id: "open", command: "c" }, 100);
    expect(list.filter((e) => e.resolved)).toHaveLength(50);
    expect(list[0]!.request.id).toBe("r10");
    expect(pendingApprovals(list, 100).map((e) => e.request.id)).toEqual(["open"]);
  });
});
