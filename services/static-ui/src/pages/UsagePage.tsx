/** Usage: tokens and cost over a window, per model and agent, a chart over time, budgets. */

import { useState } from "preact/hooks";
import { useRpc } from "../app/hooks";
import type { AgentsList } from "../agents/form";
import { formatTime } from "../components/format";
import { Badge, Button, Empty, ErrorNote, Field, Loading, Section } from "../components/ui";
import { UsageChart } from "../components/UsageChart";
import {
  RANGES,
  budgetPercent,
  chartData,
  costOf,
  formatTokens,
  formatUsd,
  windowParams,
  type Metric,
  type RangeId,
  type UsageCost,
  type UsageStatus,
} from "../usage/model";

export function UsagePage() {
  const [range, setRange] = useState<RangeId>("7d");
  const [agentId, setAgentId] = useState("");
  const [metric, setMetric] = useState<Metric>("tokens");
  const agents = useRpc<AgentsList>("agents.list");
  const params = windowParams(range, Date.now(), agentId || undefined);
  const status = useRpc<UsageStatus>("usage.status", params);
  const cost = useRpc<UsageCost>("usage.cost", params);
  const reload = () => {
    status.reload();
    cost.reload();
  };
  const totals = status.data?.totals;
  const chart = chartData(metric, status.data, cost.data);
  return (
    <div class="page page-usage">
      <Section title="Usage" testid="usage" actions={<Loading show={status.loading || cost.loading} />}>
        <div class="filters">
          <Field label="Window" id="usage-range">
            <select id="usage-range" value={range} onChange={(e) => setRange(e.currentTarget.value as RangeId)} data-testid="usage-range">
              {RANGES.map((r) => (
                <option key={r.id} value={r.id}>
                  {r.label}
                </option>
              ))}
            </select>
          </Field>
          <Field label="Agent" id="usage-agent">
            <select id="usage-agent" value={agentId} onChange={(e) => setAgentId(e.currentTarget.value)} data-testid="usage-agent">
              <option value="">All agents</option>
              {(agents.data?.agents ?? []).map((a) => (
                <option key={a.id} value={a.id}>
                  {a.name ?? a.id}
                </option>
              ))}
            </select>
          </Field>
          <Field label="Chart" id="usage-metric">
            <select id="usage-metric" value={metric} onChange={(e) => setMetric(e.currentTarget.value as Metric)} data-testid="usage-metric">
              <option value="tokens">Tokens</option>
              <option value="cost">Cost (USD)</option>
            </select>
          </Field>
          <Button testid="usage-refresh" onClick={reload}>
            Refresh
          </Button>
        </div>
        <ErrorNote error={status.error ?? cost.error} testid="usage-error" />
        <dl class="kv usage-totals" data-testid="usage-totals">
          <dt>Runs</dt>
          <dd data-testid="usage-total-runs">{totals ? totals.runs : "—"}</dd>
          <dt>Tokens</dt>
          <dd data-testid="usage-total-tokens" data-value={totals?.totalTokens}>
            {totals ? `${formatTokens(totals.totalTokens)} (${formatTokens(totals.promptTokens)} in, ${formatTokens(totals.completionTokens)} out)` : "—"}
          </dd>
          <dt>Cached input</dt>
          <dd data-testid="usage-total-cached">{totals ? formatTokens(totals.cacheReadTokens) : "—"}</dd>
          <dt>Cost</dt>
          <dd data-testid="usage-total-cost" data-value={cost.data?.totalUsd}>
            {cost.data ? formatUsd(cost.data.totalUsd) : "—"}
            {cost.data?.unpriced.length ? <span class="muted small"> (no price for {cost.data.unpriced.join(", ")})</span> : null}
          </dd>
        </dl>
        <UsageChart chart={chart} formatValue={metric === "cost" ? formatUsd : formatTokens} testid="usage-chart" />
        <p class="muted small">
          {status.data ? `${formatTime(status.data.since)} – ${formatTime(status.data.until)}, by ${status.data.bucket} (UTC)` : ""}
        </p>
      </Section>

      <Section title="By model" testid="usage-models">
        {status.data?.byModel.length ? (
          <div class="table-wrap">
            <table data-testid="usage-models-table">
              <thead>
                <tr>
                  <th scope="col">Model</th>
                  <th scope="col">Runs</th>
                  <th scope="col">Input</th>
                  <th scope="col">Output</th>
                  <th scope="col">Cached</th>
                  <th scope="col">Cost</th>
                </tr>
              </thead>
              <tbody>
                {status.data.byModel.map((m) => {
                  const priced = costOf(cost.data, m.model);
                  return (
                    <tr key={m.model} data-testid="usage-model-row" data-model={m.model}>
                      <td>
                        <code>{m.model}</code>
                      </td>
                      <td>{m.runs}</td>
                      <td>{formatTokens(m.promptTokens)}</td>
                      <td>{formatTokens(m.completionTokens)}</td>
                      <td>{formatTokens(m.cacheReadTokens)}</td>
                      <td data-testid="usage-model-cost">{priced ? (priced.priced ? formatUsd(priced.costUsd) : <Badge tone="muted">no price</Badge>) : "—"}</td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </div>
        ) : (
          <Empty testid="usage-empty">No model calls in this window.</Empty>
        )}
      </Section>

      <Section title="By agent" testid="usage-agents">
        {status.data?.byAgent.length ? (
          <div class="table-wrap">
            <table>
              <thead>
                <tr>
                  <th scope="col">Agent</th>
                  <th scope="col">Runs</th>
                  <th scope="col">Tokens</th>
                  <th scope="col">Cost</th>
                </tr>
              </thead>
              <tbody>
                {status.data.byAgent.map((a) => (
                  <tr key={a.agentId} data-testid="usage-agent-row" data-agent={a.agentId}>
                    <td>{a.agentId}</td>
                    <td>{a.runs}</td>
                    <td>{formatTokens(a.totalTokens)}</td>
                    <td>{formatUsd(cost.data?.byAgent.find((c) => c.agentId === a.agentId)?.costUsd ?? 0)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        ) : (
          <Empty>No agent used a model in this window.</Empty>
        )}
      </Section>

      <Section title="Monthly budgets" testid="usage-budgets">
        {status.data?.budgets.length ? (
          <div class="table-wrap">
            <table>
              <thead>
                <tr>
                  <th scope="col">Budget</th>
                  <th scope="col">Spent this month</th>
                  <th scope="col">Limit</th>
                  <th scope="col">State</th>
                </tr>
              </thead>
              <tbody>
                {status.data.budgets.map((b) => {
                  const percent = budgetPercent(b);
                  return (
                    <tr key={`${b.scope}:${b.id}`} data-testid="usage-budget-row" data-budget={`${b.scope}:${b.id}`} data-exhausted={String(b.exhausted)}>
                      <td>
                        {b.scope} <code>{b.id}</code>
                      </td>
                      <td>
                        {formatTokens(b.spentTokens)} tokens · {formatUsd(b.spentCostUsd)}
                        {percent !== undefined ? <progress class="budget-bar" max={100} value={percent} aria-label={`${percent}% of the budget`} /> : null}
                      </td>
                      <td>{[b.limitTokens !== undefined ? `${formatTokens(b.limitTokens)} tokens` : "", b.limitCostUsd !== undefined ? formatUsd(b.limitCostUsd) : ""].filter(Boolean).join(" · ")}</td>
                      <td>{b.exhausted ? <Badge tone="bad">spent: new runs refused until {formatTime(b.resetsAt)}</Badge> : <Badge tone="ok">open</Badge>}</td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </div>
        ) : (
          <Empty>No budgets configured (config section usage.budgets).</Empty>
        )}
      </Section>
    </div>
  );
}
