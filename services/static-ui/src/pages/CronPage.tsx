/** Cron: scheduled jobs, their runs, a form to add one, and each job's edit form
 * (`cron.update` with only the fields that changed). */

import { useState } from "preact/hooks";
import type { AgentsList } from "../agents/form";
import { connection } from "../app/connection";
import { useAction, useGatewayEvent, useRpc } from "../app/hooks";
import { buildCronAdd, buildCronUpdate, describeSchedule, draftFromJob, EMPTY_CRON, type CronDraft } from "../cron/form";
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

function JobRow({ job, onChanged, agents }: { job: Rec; onChanged: () => void; agents: AgentsList | undefined }) {
  const jobId = jobIdOf(job);
  const [showRuns, setShowRuns] = useState(false);
  const [editing, setEditing] = useState(false);
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
          <Button testid="cron-edit" aria-expanded={editing ? "true" : "false"} onClick={() => setEditing(!editing)}>
            Edit
          </Button>
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
      {editing ? (
        <EditJob
          key={String(job.updatedAtMs ?? "")}
          job={job}
          agents={agents}
          onCancel={() => setEditing(false)}
          onSaved={() => {
            setEditing(false);
            onChanged();
          }}
        />
      ) : null}
      {showRuns ? <Runs jobId={jobId} /> : null}
    </li>
  );
}

/** The job fields, shared by the add form and each job's edit form (`p`: id prefix,
 * `t`: test id prefix, so two forms on the page never share an id). */
function JobFields({ d, set, agents, p, t }: { d: CronDraft; set: <K extends keyof CronDraft>(key: K, value: CronDraft[K]) => void; agents: AgentsList | undefined; p: string; t: string }) {
  return (
    <>
      <Field label="Name" id={`${p}-name`}>
        <input id={`${p}-name`} value={d.name} onInput={(e) => set("name", e.currentTarget.value)} data-testid={`${t}-name`} />
      </Field>
      <Field label="Schedule" id={`${p}-kind`}>
        <select id={`${p}-kind`} value={d.scheduleKind} onChange={(e) => set("scheduleKind", e.currentTarget.value as CronDraft["scheduleKind"])} data-testid={`${t}-kind`}>
          <option value="cron">Cron expression</option>
          <option value="every">Every …</option>
          <option value="at">Once at …</option>
        </select>
      </Field>
      {d.scheduleKind === "cron" ? (
        <>
          <Field label="Expression" id={`${p}-expr`} hint="min hour day month weekday">
            <input id={`${p}-expr`} class="mono" value={d.expr} onInput={(e) => set("expr", e.currentTarget.value)} data-testid={`${t}-expr`} aria-describedby={`${p}-expr-hint`} spellcheck={false} />
          </Field>
          <Field label="Time zone (optional)" id={`${p}-tz`}>
            <input id={`${p}-tz`} value={d.tz} placeholder="e.g. Europe/Berlin" onInput={(e) => set("tz", e.currentTarget.value)} data-testid={`${t}-tz`} />
          </Field>
        </>
      ) : d.scheduleKind === "every" ? (
        <Field label="Interval" id={`${p}-every`}>
          <div class="row">
            <input id={`${p}-every`} type="number" min="0" step="any" value={d.every} onInput={(e) => set("every", e.currentTarget.value)} data-testid={`${t}-every`} />
            <label class="sr-only" for={`${p}-every-unit`}>
              Unit
            </label>
            <select id={`${p}-every-unit`} value={d.everyUnit} onChange={(e) => set("everyUnit", e.currentTarget.value as CronDraft["everyUnit"])} data-testid={`${t}-every-unit`}>
              <option value="s">seconds</option>
              <option value="m">minutes</option>
              <option value="h">hours</option>
            </select>
          </div>
        </Field>
      ) : (
        <Field label="When" id={`${p}-at`}>
          <input id={`${p}-at`} type="datetime-local" value={d.at} onInput={(e) => set("at", e.currentTarget.value)} data-testid={`${t}-at`} />
        </Field>
      )}
      <Field label="Action" id={`${p}-payload-kind`}>
        <select id={`${p}-payload-kind`} value={d.payloadKind} onChange={(e) => set("payloadKind", e.currentTarget.value as CronDraft["payloadKind"])} data-testid={`${t}-payload-kind`}>
          <option value="agentTurn">Agent turn</option>
          <option value="systemEvent">System event</option>
        </select>
      </Field>
      {d.payloadKind === "agentTurn" ? (
        <>
          <Field label="Agent" id={`${p}-agent`}>
            <select id={`${p}-agent`} value={d.agentId} onChange={(e) => set("agentId", e.currentTarget.value)} data-testid={`${t}-agent`}>
              <option value="">Default agent</option>
              {(agents?.agents ?? []).map((a) => (
                <option key={a.id} value={a.id}>
                  {a.name ?? a.id}
                </option>
              ))}
            </select>
          </Field>
          <Field label="Session key (optional)" id={`${p}-session`}>
            <input id={`${p}-session`} value={d.sessionKey} onInput={(e) => set("sessionKey", e.currentTarget.value)} data-testid={`${t}-session`} spellcheck={false} />
          </Field>
          <Field label="Message" id={`${p}-message`} class="span-2">
            <textarea id={`${p}-message`} rows={3} value={d.message} onInput={(e) => set("message", e.currentTarget.value)} data-testid={`${t}-message`} />
          </Field>
        </>
      ) : (
        <Field label="Event text" id={`${p}-text`} class="span-2">
          <textarea id={`${p}-text`} rows={3} value={d.text} onInput={(e) => set("text", e.currentTarget.value)} data-testid={`${t}-text`} />
        </Field>
      )}
      <label class="check span-2">
        <input type="checkbox" checked={d.enabled} onChange={(e) => set("enabled", e.currentTarget.checked)} data-testid={`${t}-enabled`} />
        Enabled
      </label>
    </>
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
      <JobFields d={d} set={set} agents={agents} p="cron" t="cron" />
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

function EditJob({ job, agents, onSaved, onCancel }: { job: Rec; agents: AgentsList | undefined; onSaved: () => void; onCancel: () => void }) {
  const [d, setD] = useState<CronDraft>(() => draftFromJob(job));
  const action = useAction();
  const [invalid, setInvalid] = useState<string | undefined>(undefined);
  const set = <K extends keyof CronDraft>(key: K, value: CronDraft[K]) => setD({ ...d, [key]: value });
  const p = `cron-edit-${jobIdOf(job)}`;
  const submit = async (e: Event) => {
    e.preventDefault();
    const built = buildCronUpdate(job, d);
    if ("error" in built) {
      setInvalid(built.error);
      return;
    }
    setInvalid(undefined);
    const saved = await action.run(() => connection.request("cron.update", built.params));
    if (saved !== undefined) onSaved();
  };
  return (
    <form class="form form-grid" onSubmit={submit} data-testid="cron-edit-form" noValidate>
      <JobFields d={d} set={set} agents={agents} p={p} t="cron-edit" />
      <div class="row span-2">
        <Button type="submit" variant="primary" testid="cron-edit-save" busy={action.busy}>
          Save changes
        </Button>
        <Button variant="ghost" testid="cron-edit-cancel" onClick={onCancel}>
          Cancel
        </Button>
      </div>
      <div class="span-2">
        {invalid ? (
          <div class="note note-error" role="alert" data-testid="cron-edit-error">
            {invalid}
          </div>
        ) : (
          <ErrorNote error={action.error} testid="cron-edit-error" />
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
              <JobRow key={jobIdOf(job) || i} job={job} onChanged={rpc.reload} agents={agents.data} />
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
