import { describe, expect, it } from "vitest";
import { formatAgo, formatDuration, formatValue, humanizeKey, shortId, toMs } from "./format";

describe("format", () => {
  it("reads ms, seconds and ISO times", () => {
    expect(toMs(1764240000000)).toBe(1764240000000);
    expect(toMs(1764240000)).toBe(1764240000000);
    expect(toMs("2025-01-01T00:00:00Z")).toBe(Date.UTC(2025, 0, 1));
    expect(toMs("nope")).toBeUndefined();
  });

  it("formats durations", () => {
    expect(formatDuration(12)).toBe("12 ms");
    expect(formatDuration(5_000)).toBe("5s");
    expect(formatDuration(62_000)).toBe("1m 2s");
    expect(formatDuration(3_720_000)).toBe("1h 2m");
    expect(formatDuration(90_000_000)).toBe("1d 1h");
    expect(formatDuration(undefined)).toBe("—");
  });

  it("formats relative times both ways", () => {
    const now = 1_000_000_000_000;
    expect(formatAgo(now - 1000, now)).toBe("just now");
    expect(formatAgo(now - 5 * 60_000, now)).toBe("5m ago");
    expect(formatAgo(now + 2 * 3_600_000, now)).toBe("in 2h");
  });

  it("formats cells and ids", () => {
    expect(formatValue(["a", "b"])).toBe("a, b");
    expect(formatValue({ a: 1 })).toBe('{"a":1}');
    expect(formatValue(null)).toBe("—");
    expect(shortId("0123456789abcdef", 6)).toBe("012345…");
    expect(shortId("abc", 6)).toBe("abc");
  });
});

describe("humanizeKey", () => {
  it("turns wire keys into labels", () => {
    expect(humanizeKey("uptimeMs")).toBe("Uptime");
    expect(humanizeKey("activeSessions")).toBe("Active sessions");
    expect(humanizeKey("max_payload")).toBe("Max payload");
    expect(humanizeKey("ok")).toBe("Ok");
  });
});
