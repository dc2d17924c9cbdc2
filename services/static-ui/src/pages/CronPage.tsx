/** Cron: scheduled jobs, their runs, and a form to add one. */

import { useState } from "preact/hooks";
import type { AgentsList } from "../agents/form";
import { connection } from "../app/connection";
import { useAction, useGatewayEvent, useRpc } from "../app/hooks";
import { buildCronAdd, describeSchedule, EMPTY_CRON, type CronDraft } from "../cron/form";
import { formatAgo, formatTime, formatValue } from "../components/format";
import { Badge, Button, ConfirmButton, Empty, ErrorNote, Field, Loading, Section } from "../components/ui";

type Rec = Record<string, unknown>;
const str = (v: unknown) => (typeof v === "string" ? v : undefined);

function jobIdOf(job: Rec): string {
  return str(job.jobId) ?? str(job.id) ?? "";
}

function Runs({ jobId }: { jobId: string }) {
  const rpc = useRpc<{ runs: Rec[] }>("cron.runs", { jobId, limit: 20 });
  useGatewayEvent("cron.event", (p) => (p as Rec)?.jobId === jobId && rpc.reload());
  const runs = rpc.data?.runs ?? [];
  return (
    <div class="runs" data-testid="cron-runs">
      <ErrorNote error={rpc.error} />
      {runs.length ? (
        <table>
          <thead>
            <tr>
              <th scope="col">Run</th>
              <th scope="col">Status</th>
              <th scope="col">Started</th>
              <th scope="col">Ended</th>
            </tr>
          </thead>
          <tbody>
            {runs.map((r, i) => (
              <tr key={str(r.runId) ?? i} data-testid="cron-run">
                <td>
                  <code class="small">{str(r.runId) ?? "—"}</code>
                </td>
                <td>
                  <Badge tone={r.status === "ok" ? "ok" : r.status === "error" ? "bad" : "muted"}>{formatValue(r.status)}</Badge>
                  {r.error ? <div class="small muted">{formatValue(r.error)}</div> : null}
                </td>
                <td>{formatTime(r.startedAt ?? r.startedAtMs)}</td>
                <td>{formatTime(r.endedAt ?? r.endedAtMs)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : (
        <Empty>{rpc.loading ? "Loading…" : "No runs yet."}</Empty>
      )}
    </div>
  );
}

function JobRow({ job, onChanged }: { job: Rec; onChanged: () => void }) {
  const jobId = jobIdOf(job);
  const [showRuns, setShowRuns] = useState(false);
  const [started, setStarted] = useState<string | undefined>(undefined);
  const action = useAction();
  const enabled = job.enabled !== false;
  const toggle = () =>
    void action.run(() => connection.request("cron.update", { jobId, patch: { enabled: !enabled } })).then((r) => r !== undefined && onChanged());
  const run = () =>
    void action.run(() => connection.request<{ runId: string }>("cron.run", { jobId })).then((r) => {
      if (r) {
        setStarted(r.runId);
        setShowRuns(true);
      }
    });
  const remove = () => void action.run(() => connection.request("cron.remove", { jobId })).then((r) => r !== undefined && onChanged());
  const payload = (job.payload ?? {}) as Rec;
  return (
    <li class="item" data-testid="cron-job" data-job-id={jobId} data-enabled={enabled ? "true" : "false"}>
      <div class="item-head">
        <div>
          <div class="strong">
            {str(job.name) ?? jobId} {enabled ? <Badge tone="ok">enabled</Badge> : <Badge>disabled</Badge>}
          </div>
          <div class="muted small">
            {describeSchedule(job.schedule)} · next {formatAgo(job.nextRunAtMs ?? job.nextRunAt)}
            {job.lastRunAtMs ?? job.lastRunAt ? ` · last ${formatAgo(job.lastRunAtMs ?? job.lastRunAt)}` : ""}
          </div>
          <div class="small clip">
            {payload.kind === "agentTurn"
              ? `agent ${str(payload.agentId) ?? "(default)"}: ${str(payload.message) ?? ""}`
              : `system event: ${str(payload.text) ?? ""}`}
          </div>
        </div>
        <div class="row wrap-row">
          <Button testid="cron-toggle" busy={action.busy} onClick={toggle}>
            {enabled ? "Disable" : "Enable"}
          </Button>
          <Button testid="cron-run-now" busy={action.busy} onClick={run}>
            Run now
          </Button>
          <Button variant="ghost" testid="cron-show-runs" aria-expanded={showRuns ? "true" : "false"} onClick={() => setShowRuns(!showRuns)}>
            Runs
          </Button>
          <ConfirmButton label="Remove" testid="cron-remove" busy={action.busy} onConfirm={remove} />
        </div>
      </div>
      {started ? (
        <p class="small" role="status" data-testid="cron-run-started">
          Started run <code>{started}</code>.
        </p>
      ) : null}
      <ErrorNote error={action.error} testid="cron-job-error" />
      {showRuns ? <Runs jobId={jobId} /> : null}
    </li>
  );
}

function AddJob({ onAdded, agents }: { onAdded: () => void; agents: AgentsList | undefined }) {
  const [d, setD] = useState<CronDraft>(EMPTY_CRON);
  const action = useAction();
  const [invalid, setInvalid] = useState<string | undefined>(undefined);
  const set = <K extends keyof CronDraft>(key: K, value: CronDraft[K]) => setD({ ...d, [key]: value });
  const submit = async (e: Event) => {
    e.preventDefault();
    const built = buildCronAdd(d);
    if ("error" in built) {
      setInvalid(built.error);
      return;
    }
    setInvalid(undefined);
    const job = await action.run(() => connection.request("cron.add", built.params));
    if (job !== undefined) {
      setD(EMPTY_CRON);
      onAdded();
    }
  };
  return (
    <form class="form form-grid" onSubmit={submit} data-testid="cron-add-form" noValidate>
      <Field label="Name" id="cron-name">
        <input id="cron-name" value={d.name} onInput={(e) => set("name", e.currentTarget.value)} data-testid="cron-name" />
      </Field>
      <Field label="Schedule" id="cron-kind">
        <select id="cron-kind" value={d.scheduleKind} onChange={(e) => set("scheduleKind", e.currentTarget.value as CronDraft["scheduleKind"])} data-testid="cron-kind">
          <option value="cron">Cron expression</option>
          <option value="every">Every …</option>
          <option value="at">Once at …</option>
        </select>
      </Field>
      {d.scheduleKind === "cron" ? (
        <>
          <Field label="Expression" id="cron-expr" hint="min hour day month weekday">
            <input id="cron-expr" class="mono" value={d.expr} onInput={(e) => set("expr", e.currentTarget.value)} data-testid="cron-expr" aria-describedby="cron-expr-hint" spellcheck={false} />
          </Field>
          <Field label="Time zone (optional)" id="cron-tz">
            <input id="cron-tz" value={d.tz} placeholder="e.g. Europe/Berlin" onInput={(e) => set("tz", e.currentTarget.value)} data-testid="cron-tz" />
          </Field>
        </>
      ) : d.scheduleKind === "every" ? (
        <Field label="Interval" id="cron-every">
          <div class="row">
            <input id="cron-every" type="number" min="0" step="any" value={d.every} onInput={(e) => set("every", e.currentTarget.value)} data-testid="cron-every" />
            <label class="sr-only" for="cron-every-unit">
              Unit
            </label>
            <select id="cron-every-unit" value={d.everyUnit} onChange={(e) => set("everyUnit", e.currentTarget.value as CronDraft["everyUnit"])} data-testid="cron-every-unit">
              <option value="s">seconds</option>
              <option value="m">minutes</option>
              <option value="h">hours</option>
            </select>
          </div>
        </Field>
      ) : (
        <Field label="When" id="cron-at">
          <input id="cron-at" type="datetime-local" value={d.at} onInput={(e) => set("at", e.currentTarget.value)} data-testid="cron-at" />
        </Field>
      )}
      <Field label="Action" id="cron-payload-kind">
        <select id="cron-payload-kind" value={d.payloadKind} onChange={(e) => set("payloadKind", e.currentTarget.value as CronDraft["payloadKind"])} data-testid="cron-payload-kind">
          <option value="agentTurn">Agent turn</option>
          <option value="systemEvent">System event</option>
        </select>
      </Field>
      {d.payloadKind === "agentTurn" ? (
        <>
          <Field label="Agent" id="cron-agent">
            <select id="cron-agent" value={d.agentId} onChange={(e) => set("agentId", e.currentTarget.value)} data-testid="cron-agent">
              <option value="">Default agent</option>
              {(agents?.agents ?? []).map((a) => (
                <option key={a.id} value={a.id}>
                  {a.name ?? a.id}
                </option>
              ))}
            </select>
          </Field>
          <Field label="Session key (optional)" id="cron-session">
            <input id="cron-session" value={d.sessionKey} onInput={(e) => set("sessionKey", e.currentTarget.value)} data-testid="cron-session" spellcheck={false} />
          </Field>
          <Field label="Message" id="cron-message" class="span-2">
            <textarea id="cron-message" rows={3} value={d.message} onInput={(e) => set("message", e.currentTarget.value)} data-testid="cron-message" />
          </Field>
        </>
      ) : (
        <Field label="Event text" id="cron-text" class="span-2">
          <textarea id="cron-text" rows={3} value={d.text} onInput={(e) => set("text", e.currentTarget.value)} data-testid="cron-text" />
        </Field>
      )}
      <label class="check span-2">
        <input type="checkbox" checked={d.enabled} onChange={(e) => set("enabled", e.currentTarget.checked)} data-testid="cron-enabled" />
        Enabled
      </label>
      <div class="row span-2">
        <Button type="submit" variant="primary" testid="cron-add-submit" busy={action.busy}>
          Add job
        </Button>
      </div>
      <div class="span-2">
        {invalid ? (
          <div class="note note-error" role="alert" data-testid="cron-add-error">
            {invalid}
          </div>
        ) : (
          <ErrorNote error={action.error} testid="cron-add-error" />
        )}
      </div>
    </form>
  );
}

export function CronPage() {
  const rpc = useRpc<{ jobs: Rec[] }>("cron.list", { includeDisabled: true });
  const agents = useRpc<AgentsList>("agents.list");
  useGatewayEvent("cron.event", () => rpc.reload());
  const jobs = rpc.data?.jobs ?? [];
  return (
    <div class="page">
      <Section title="Jobs" testid="cron-jobs" actions={<Loading show={rpc.loading} />}>
        <ErrorNote error={rpc.error} />
        {jobs.length ? (
          <ul class="items">
            {jobs.map((job, i) => (
              <JobRow key={jobIdOf(job) || i} job={job} onChanged={rpc.reload} />
            ))}
          </ul>
        ) : (
          <Empty testid="cron-empty">No scheduled jobs.</Empty>
        )}
      </Section>
      <Section title="New job" testid="cron-add">
        <AddJob onAdded={rpc.reload} agents={agents.data} />
      </Section>
    </div>
  );
}
