import { describe, expect, it } from "vitest";
import { appendLines, readLine } from "./model";

describe("readLine", () => {
  it("reads structured records", () => {
    expect(readLine({ ts: 1764240000000, level: "INFO", service: "runtime", msg: "started", port: 1 }, "k")).toEqual({
      key: "k",
      ts: 1764240000000,
      level: "info",
      service: "runtime",
      message: "started",
      extra: { port: 1 },
    });
  });

  it("reads JSON text and plain text", () => {
    expect(readLine('{"time":"2025-01-01T00:00:00Z","levelname":"warning","logger":"auth","message":"x"}', "a")).toMatchObject({
      ts: Date.UTC(2025, 0, 1),
      level: "warning",
      service: "auth",
      message: "x",
    });
    expect(readLine("plain line", "b")).toEqual({ key: "b", level: "", service: "", message: "plain line", raw: "plain line" });
  });
});

describe("appendLines", () => {
  it("keeps the newest lines up to max", () => {
    let lines = appendLines([], ["a", "b", "c"], 0, 4);
    lines = appendLines(lines, ["d", "e"], 3, 4);
    expect(lines.map((l) => l.message)).toEqual(["b", "c", "d", "e"]);
    expect(lines.map((l) => l.key)).toEqual(["1", "2", "3", "4"]);
  });
});
