/** The cron form's draft, the `cron.add` params it makes, and schedule descriptions. Pure. */

export interface CronDraft {
  name: string;
  scheduleKind: "cron" | "every" | "at";
  expr: string;
  tz: string;
  every: string;
  everyUnit: "s" | "m" | "h";
  /** `datetime-local` value (local time). */
  at: string;
  payloadKind: "agentTurn" | "systemEvent";
  message: string;
  agentId: string;
  sessionKey: string;
  text: string;
  enabled: boolean;
}

export const EMPTY_CRON: CronDraft = {
  name: "",
  scheduleKind: "cron",
  expr: "0 9 * * *",
  tz: "",
  every: "15",
  everyUnit: "m",
  at: "",
  payloadKind: "agentTurn",
  message: "",
  agentId: "",
  sessionKey: "",
  text: "",
  enabled: true,
};

const UNIT_MS = { s: 1000, m: 60_000, h: 3_600_000 } as const;

export type Built = { params: Record<string, unknown> } | { error: string };

export function buildCronAdd(d: CronDraft): Built {
  const name = d.name.trim();
  if (!name) return { error: "Give the job a name." };
  let schedule: Record<string, unknown>;
  if (d.scheduleKind === "cron") {
    const expr = d.expr.trim().replace(/\s+/g, " ");
    if (expr.split(" ").length < 5) return { error: "A cron expression has five fields (min hour day month weekday)." };
    schedule = { kind: "cron", expr };
    if (d.tz.trim()) schedule.tz = d.tz.trim();
  } else if (d.scheduleKind === "every") {
    const n = Number(d.every);
    if (!Number.isFinite(n) || n <= 0) return { error: "The interval must be a positive number." };
    schedule = { kind: "every", everyMs: Math.round(n * UNIT_MS[d.everyUnit]) };
  } else {
    const when = new Date(d.at);
    if (!d.at || Number.isNaN(when.getTime())) return { error: "Pick a date and time." };
    schedule = { kind: "at", at: when.toISOString() };
  }
  let payload: Record<string, unknown>;
  if (d.payloadKind === "agentTurn") {
    if (!d.message.trim()) return { error: "Write the message the agent receives." };
    payload = { kind: "agentTurn", message: d.message.trim() };
    if (d.agentId.trim()) payload.agentId = d.agentId.trim();
    if (d.sessionKey.trim()) payload.sessionKey = d.sessionKey.trim();
  } else {
    if (!d.text.trim()) return { error: "Write the system event text." };
    payload = { kind: "systemEvent", text: d.text.trim() };
  }
  return { params: { name, schedule, payload, enabled: d.enabled } };
}

function every(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

export function describeSchedule(schedule: unknown): string {
  if (typeof schedule !== "object" || schedule === null) return String(schedule ?? "—");
  const s = schedule as Record<string, unknown>;
  if (s.kind === "cron") return `cron ${String(s.expr)}${s.tz ? ` (${String(s.tz)})` : ""}`;
  if (s.kind === "every" && typeof s.everyMs === "number") return `every ${every(s.everyMs)}`;
  if (s.kind === "at") return `once at ${typeof s.at === "number" ? new Date(s.at).toLocaleString() : new Date(String(s.at)).toLocaleString()}`;
  return JSON.stringify(schedule);
}

/** A `datetime-local` value (local time, minutes) for an instant. */
function localInput(when: Date): string {
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${when.getFullYear()}-${pad(when.getMonth() + 1)}-${pad(when.getDate())}T${pad(when.getHours())}:${pad(when.getMinutes())}`;
}

/** The form's draft for an existing job (`cron.list` row), to edit it. */
export function draftFromJob(job: Record<string, unknown>): CronDraft {
  const d: CronDraft = { ...EMPTY_CRON, name: typeof job.name === "string" ? job.name : "", enabled: job.enabled !== false };
  const s = (job.schedule ?? {}) as Record<string, unknown>;
  if (s.kind === "cron") {
    d.scheduleKind = "cron";
    d.expr = String(s.expr ?? "");
    d.tz = typeof s.tz === "string" ? s.tz : "";
  } else if (s.kind === "every" && typeof s.everyMs === "number") {
    d.scheduleKind = "every";
    const unit = (["h", "m", "s"] as const).find((u) => s.everyMs as number % UNIT_MS[u] === 0) ?? "s";
    d.everyUnit = unit;
    d.every = String((s.everyMs as number) / UNIT_MS[unit]);
  } else if (s.kind === "at") {
    d.scheduleKind = "at";
    const when = new Date(typeof s.at === "number" ? s.at : String(s.at));
    d.at = Number.isNaN(when.getTime()) ? "" : localInput(when);
  }
  const p = (job.payload ?? {}) as Record<string, unknown>;
  if (p.kind === "systemEvent") {
    d.payloadKind = "systemEvent";
    d.text = String(p.text ?? "");
  } else {
    d.payloadKind = "agentTurn";
    d.message = String(p.message ?? "");
    d.agentId = typeof p.agentId === "string" ? p.agentId : "";
    d.sessionKey = typeof p.sessionKey === "string" ? p.sessionKey : "";
  }
  return d;
}

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/** `cron.update` params for an edited draft: only what changed; an error when the draft is
 * invalid or nothing changed. A one-shot time left as it was keeps the stored instant (the
 * form shows minutes only). */
export function buildCronUpdate(job: Record<string, unknown>, d: CronDraft): Built {
  const built = buildCronAdd(d);
  if ("error" in built) return built;
  const next = built.params;
  const before = buildCronAdd(draftFromJob(job));
  const old = "params" in before ? before.params : {};
  const patch: Record<string, unknown> = {};
  if (next.name !== job.name) patch.name = next.name;
  if (!same(next.schedule, old.schedule)) patch.schedule = next.schedule;
  if (!same(next.payload, old.payload)) patch.payload = next.payload;
  if (next.enabled !== (job.enabled !== false)) patch.enabled = next.enabled;
  if (!Object.keys(patch).length) return { error: "Nothing changed." };
  return { params: { jobId: String(job.jobId ?? job.id ?? ""), patch } };
}
