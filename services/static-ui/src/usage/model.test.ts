import { describe, expect, it } from "vitest";
import { budgetPercent, chartData, costOf, formatTokens, formatUsd, windowParams, type UsageCost, type UsageStatus } from "./model";

const T0 = Date.UTC(2026, 11, 6, 10, 0, 0);

function tokens(prompt: number, completion: number, read = 0) {
  return {
    runs: 1,
    calls: 1,
    promptTokens: prompt,
    completionTokens: completion,
    cacheReadTokens: read,
    cacheWriteTokens: 0,
    totalTokens: prompt + completion,
  };
}

const status: UsageStatus = {
  since: T0 - 7_200_000,
  until: T0,
  bucket: "hour",
  totals: tokens(30, 7, 4),
  byProvider: [],
  byModel: [{ model: "fake/fake-small", provider: "fake", ...tokens(30, 7, 4) }],
  byAgent: [],
  series: [
    { start: T0 - 7_200_000, ...tokens(10, 2) },
    { start: T0 - 3_600_000, ...tokens(20, 5, 4) },
  ],
  budgets: [],
};

const cost: UsageCost = {
  since: status.since,
  until: status.until,
  bucket: "hour",
  totalUsd: 0.5,
  byModel: [{ model: "fake/fake-small", provider: "fake", costUsd: 0.5, priced: true }],
  byAgent: [],
  series: [
    { start: T0 - 7_200_000, costUsd: 0.1 },
    { start: T0 - 3_600_000, costUsd: 0.4 },
  ],
  unpriced: [],
};

describe("windowParams", () => {
  it("ends at the next whole minute and picks the bucket of the range", () => {
    const now = T0 + 1_234;
    expect(windowParams("24h", now)).toEqual({ since: T0 + 60_000 - 86_400_000, until: T0 + 60_000, bucket: "hour" });
    expect(windowParams("90d", T0, "main")).toEqual({ since: T0 - 90 * 86_400_000, until: T0, bucket: "day", agentId: "main" });
  });

  it("asks the same thing within a minute (no refetch per render)", () => {
    expect(windowParams("7d", T0 + 1)).toEqual(windowParams("7d", T0 + 59_000));
  });
});

describe("chartData", () => {
  it("turns the token series into uPlot columns with x in seconds", () => {
    const chart = chartData("tokens", status, cost);
    expect(chart.labels).toEqual(["Prompt", "Completion", "Cache read"]);
    expect(chart.data).toEqual([
      [(T0 - 7_200_000) / 1000, (T0 - 3_600_000) / 1000],
      [10, 20],
      [2, 5],
      [0, 4],
    ]);
  });

  it("charts the cost series, and nothing before the data came", () => {
    expect(chartData("cost", status, cost).data[1]).toEqual([0.1, 0.4]);
    expect(chartData("tokens", undefined, undefined).data).toEqual([[], [], [], []]);
  });
});

describe("formats", () => {
  it("shortens big token counts", () => {
    expect([formatTokens(999), formatTokens(12_345), formatTokens(123_456), formatTokens(4_560_000)]).toEqual(["999", "12.3k", "123k", "4.56M"]);
  });

  it("keeps small amounts of money readable", () => {
    expect([formatUsd(0), formatUsd(12.345), formatUsd(0.004213), formatUsd(0.1)]).toEqual(["$0", "$12.35", "$0.0042", "$0.1"]);
  });
});

describe("budgets and costs", () => {
  it("reports the fuller limit", () => {
    const base = { scope: "agent" as const, id: "main", month: "2026-12", exhausted: false, resetsAt: 0 };
    expect(budgetPercent({ ...base, spentTokens: 50, spentCostUsd: 0.9, limitTokens: 100, limitCostUsd: 1 })).toBe(90);
    expect(budgetPercent({ ...base, spentTokens: 500, spentCostUsd: 0, limitTokens: 100 })).toBe(100);
    expect(budgetPercent({ ...base, spentTokens: 5, spentCostUsd: 0 })).toBeUndefined();
  });

  it("finds a model's cost", () => {
    expect(costOf(cost, "fake/fake-small")?.costUsd).toBe(0.5);
    expect(costOf(cost, "other/x")).toBeUndefined();
    expect(costOf(undefined, "fake/fake-small")).toBeUndefined();
  });
});
