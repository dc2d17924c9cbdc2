import { describe, expect, it } from "vitest";
import { GatewayError, ErrorCode } from "../gateway/errors";
import { byteSize, conflictRevision, draftProblem, fileStatus, isDirty, saveParams } from "./files";

describe("agent files editor", () => {
  it("describes each file's state", () => {
    expect(fileStatus({ name: "AGENTS.md", missing: false, size: 412, revision: 3 })).toBe("412 B · rev 3");
    expect(fileStatus({ name: "SOUL.md", missing: true })).toBe("not written");
    expect(fileStatus({ name: "SOUL.md", missing: true, revision: 4 })).toBe("removed (rev 4)");
  });

  it("saves conditionally on the revision it loaded", () => {
    expect(saveParams("main", { name: "SOUL.md", missing: true }, "calm")).toEqual({
      agentId: "main",
      name: "SOUL.md",
      content: "calm",
      expectedRevision: 0,
    });
    const loaded = { name: "SOUL.md", missing: false, revision: 2, content: "calm" };
    expect(saveParams("main", loaded, "warm").expectedRevision).toBe(2);
    expect(isDirty(loaded, "calm")).toBe(false);
    expect(isDirty(loaded, "warm")).toBe(true);
    expect(isDirty(undefined, "")).toBe(false);
  });

  it("refuses a draft over 64 KiB before sending it, counting UTF-8 bytes", () => {
    expect(byteSize("é")).toBe(2);
    expect(draftProblem("é".repeat(32 * 1024))).toBeUndefined();
    expect(draftProblem("é".repeat(32 * 1024) + "x")).toMatch(/65537 bytes/);
  });

  it("recognises a file changed elsewhere", () => {
    const changed = new GatewayError(ErrorCode.CONFLICT, "SOUL.md changed", {
      code: "FILE_CHANGED",
      currentRevision: 5,
    });
    expect(conflictRevision(changed)).toBe(5);
    expect(conflictRevision(new GatewayError(ErrorCode.CONFLICT, "x", { code: "OTHER" }))).toBeUndefined();
    expect(conflictRevision(undefined)).toBeUndefined();
  });
});
