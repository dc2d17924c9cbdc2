import { describe, expect, it } from "vitest";
import { backoffDelay, type BackoffOptions } from "./backoff";

const opts: BackoffOptions = { baseMs: 100, maxMs: 5000, factor: 2, jitter: 0.5 };

describe("backoffDelay", () => {
  it("grows exponentially without jitter", () => {
    const noJitter = { ...opts, jitter: 0 };
    expect([0, 1, 2, 3].map((n) => backoffDelay(n, noJitter))).toEqual([100, 200, 400, 800]);
  });

  it("is capped at maxMs", () => {
    expect(backoffDelay(20, { ...opts, jitter: 0 })).toBe(5000);
    expect(backoffDelay(5000, { ...opts, jitter: 0 })).toBe(5000);
  });

  it("spreads the jittered part over [1 - jitter, 1] of the delay", () => {
    expect(backoffDelay(2, opts, () => 0)).toBe(200);
    expect(backoffDelay(2, opts, () => 0.5)).toBe(300);
    expect(backoffDelay(2, opts, () => 0.999999)).toBe(400);
  });

  it("full jitter can reach zero", () => {
    expect(backoffDelay(3, { ...opts, jitter: 1 }, () => 0)).toBe(0);
  });

  it("treats negative or fractional attempts sanely", () => {
    expect(backoffDelay(-3, { ...opts, jitter: 0 })).toBe(100);
    expect(backoffDelay(1.7, { ...opts, jitter: 0 })).toBe(200);
  });

  it("never leaves its bounds for random inputs", () => {
    for (let n = 0; n < 40; n++) {
      const d = backoffDelay(n, opts);
      const cap = Math.min(5000, 100 * 2 ** n);
      expect(d).toBeGreaterThanOrEqual(cap / 2 - 1);
      expect(d).toBeLessThanOrEqual(cap);
    }
  });
});
