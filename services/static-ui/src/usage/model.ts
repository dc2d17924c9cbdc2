/** The usage page's data: windows, chart series and number formats from `usage.status` and
 * `usage.cost`. Pure (the chart library only draws what these return). */

export type Bucket = "hour" | "day";
export type RangeId = "24h" | "7d" | "30d" | "90d";

export interface UsageTokens {
  runs: number;
  calls: number;
  promptTokens: number;
  completionTokens: number;
  cacheReadTokens: number;
  cacheWriteTokens: number;
  totalTokens: number;
}

export interface UsagePoint extends UsageTokens {
  start: number;
}

export interface BudgetState {
  scope: "agent" | "token";
  id: string;
  month: string;
  spentTokens: number;
  spentCostUsd: number;
  limitTokens?: number;
  limitCostUsd?: number;
  exhausted: boolean;
  resetsAt: number;
}

export interface UsageStatus {
  since: number;
  until: number;
  bucket: Bucket;
  totals: UsageTokens;
  byProvider: (UsageTokens & { provider: string })[];
  byModel: (UsageTokens & { model: string; provider: string })[];
  byAgent: (UsageTokens & { agentId: string })[];
  series: UsagePoint[];
  budgets: BudgetState[];
}

export interface ModelCost {
  model: string;
  provider: string;
  costUsd: number;
  priced: boolean;
}

export interface UsageCost {
  since: number;
  until: number;
  bucket: Bucket;
  totalUsd: number;
  byModel: ModelCost[];
  byAgent: { agentId: string; costUsd: number }[];
  series: { start: number; costUsd: number }[];
  unpriced: string[];
}

export const RANGES: { id: RangeId; label: string; ms: number; bucket: Bucket }[] = [
  { id: "24h", label: "Last 24 hours", ms: 86_400_000, bucket: "hour" },
  { id: "7d", label: "Last 7 days", ms: 7 * 86_400_000, bucket: "hour" },
  { id: "30d", label: "Last 30 days", ms: 30 * 86_400_000, bucket: "day" },
  { id: "90d", label: "Last 90 days", ms: 90 * 86_400_000, bucket: "day" },
];

/** The params of both calls for a range ending at `now` (rounded to the minute, so a
 * re-render does not ask again), optionally for one agent. */
export function windowParams(range: RangeId, now: number, agentId?: string): Record<string, unknown> {
  const spec = RANGES.find((r) => r.id === range) ?? RANGES[2]!;
  const until = Math.ceil(now / 60_000) * 60_000;
  const params: Record<string, unknown> = { since: until - spec.ms, until, bucket: spec.bucket };
  if (agentId) params.agentId = agentId;
  return params;
}

export type Metric = "tokens" | "cost";

/** Column-oriented data as uPlot takes it: x in seconds, then one array per series. */
export interface ChartData {
  labels: string[];
  data: number[][];
}

export function chartData(metric: Metric, status: UsageStatus | undefined, cost: UsageCost | undefined): ChartData {
  if (metric === "cost") {
    const points = cost?.series ?? [];
    return { labels: ["Cost (USD)"], data: [points.map((p) => p.start / 1000), points.map((p) => p.costUsd)] };
  }
  const points = status?.series ?? [];
  return {
    labels: ["Prompt", "Completion", "Cache read"],
    data: [
      points.map((p) => p.start / 1000),
      points.map((p) => p.promptTokens),
      points.map((p) => p.completionTokens),
      points.map((p) => p.cacheReadTokens),
    ],
  };
}

/** `1,234`, `12.3k`, `4.56M`. */
export function formatTokens(n: number): string {
  if (!Number.isFinite(n)) return "—";
  const abs = Math.abs(n);
  if (abs >= 1e6) return `${(n / 1e6).toFixed(abs >= 1e8 ? 0 : 2)}M`;
  if (abs >= 1e4) return `${(n / 1e3).toFixed(abs >= 1e5 ? 0 : 1)}k`;
  return Math.round(n).toLocaleString("en-US");
}

/** Dollars with enough digits to see small amounts: `$12.35`, `$0.0042`, `$0`. */
export function formatUsd(x: number): string {
  if (!Number.isFinite(x)) return "—";
  if (x === 0) return "$0";
  if (Math.abs(x) >= 1) return `$${x.toFixed(2)}`;
  return `$${x.toPrecision(2).replace(/0+$/, "").replace(/\.$/, "")}`;
}

/** How full a budget is (0–100, the fuller of its limits); undefined without limits. */
export function budgetPercent(b: BudgetState): number | undefined {
  const parts: number[] = [];
  if (b.limitTokens) parts.push(b.spentTokens / b.limitTokens);
  if (b.limitCostUsd) parts.push(b.spentCostUsd / b.limitCostUsd);
  if (!parts.length) return undefined;
  return Math.min(100, Math.round(Math.max(...parts) * 100));
}

/** Each model's cost next to its tokens (the two calls answer separately). */
export function costOf(cost: UsageCost | undefined, model: string): ModelCost | undefined {
  return cost?.byModel.find((m) => m.model === model);
}
