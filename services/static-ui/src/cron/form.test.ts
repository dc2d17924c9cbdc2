import { describe, expect, it } from "vitest";
import { buildCronAdd, buildCronUpdate, describeSchedule, draftFromJob, EMPTY_CRON } from "./form";

describe("buildCronAdd", () => {
  it("builds a cron agent turn", () => {
    expect(buildCronAdd({ ...EMPTY_CRON, name: "daily", expr: "0  9 * * 1-5", tz: "Europe/Paris", message: "Summarise", agentId: "main" })).toEqual({
      params: {
        name: "daily",
        schedule: { kind: "cron", expr: "0 9 * * 1-5", tz: "Europe/Paris" },
        payload: { kind: "agentTurn", message: "Summarise", agentId: "main" },
        enabled: true,
      },
    });
  });

  it("builds intervals and one-shot system events", () => {
    const every = buildCronAdd({ ...EMPTY_CRON, name: "x", scheduleKind: "every", every: "1.5", everyUnit: "h", payloadKind: "systemEvent", text: "ping", enabled: false });
    expect(every).toEqual({ params: { name: "x", schedule: { kind: "every", everyMs: 5_400_000 }, payload: { kind: "systemEvent", text: "ping" }, enabled: false } });
    const at = buildCronAdd({ ...EMPTY_CRON, name: "x", scheduleKind: "at", at: "2030-01-02T03:04", message: "m" });
    expect("params" in at && (at.params.schedule as { at: string }).at).toBe(new Date("2030-01-02T03:04").toISOString());
  });

  it("explains what is missing", () => {
    expect(buildCronAdd({ ...EMPTY_CRON, message: "m" })).toEqual({ error: "Give the job a name." });
    expect(buildCronAdd({ ...EMPTY_CRON, name: "n", expr: "* *", message: "m" })).toHaveProperty("error");
    expect(buildCronAdd({ ...EMPTY_CRON, name: "n", scheduleKind: "every", every: "0", message: "m" })).toHaveProperty("error");
    expect(buildCronAdd({ ...EMPTY_CRON, name: "n" })).toHaveProperty("error");
  });
});

describe("describeSchedule", () => {
  it("reads every kind", () => {
    expect(describeSchedule({ kind: "cron", expr: "*/5 * * * *" })).toBe("cron */5 * * * *");
    expect(describeSchedule({ kind: "every", everyMs: 900_000 })).toBe("every 15m");
    expect(describeSchedule({ kind: "every", everyMs: 1500 })).toBe("every 1500ms");
    expect(describeSchedule(null)).toBe("—");
  });
});

describe("editing a job", () => {
  const job = {
    jobId: "j-1",
    name: "daily",
    schedule: { kind: "cron", expr: "0 9 * * 1-5", tz: "Europe/Paris" },
    payload: { kind: "agentTurn", message: "Summarise", agentId: "main" },
    enabled: true,
  };

  it("turns a job back into the form's draft", () => {
    const d = draftFromJob(job);
    expect(d).toMatchObject({ name: "daily", scheduleKind: "cron", expr: "0 9 * * 1-5", tz: "Europe/Paris", payloadKind: "agentTurn", message: "Summarise", agentId: "main", enabled: true });
    expect(draftFromJob({ ...job, schedule: { kind: "every", everyMs: 5_400_000 } })).toMatchObject({ scheduleKind: "every", every: "90", everyUnit: "m" });
    expect(draftFromJob({ ...job, payload: { kind: "systemEvent", text: "ping" }, enabled: false })).toMatchObject({ payloadKind: "systemEvent", text: "ping", enabled: false });
    const at = draftFromJob({ ...job, schedule: { kind: "at", at: "2030-01-02T03:04:00Z" } });
    expect(new Date(at.at).toISOString()).toBe("2030-01-02T03:04:00.000Z");
  });

  it("patches only what changed", () => {
    const d = draftFromJob(job);
    expect(buildCronUpdate(job, { ...d, expr: "30 7 * * *" })).toEqual({
      params: { jobId: "j-1", patch: { schedule: { kind: "cron", expr: "30 7 * * *", tz: "Europe/Paris" } } },
    });
    expect(buildCronUpdate(job, { ...d, payloadKind: "systemEvent", text: "wake up", enabled: false })).toEqual({
      params: { jobId: "j-1", patch: { payload: { kind: "systemEvent", text: "wake up" }, enabled: false } },
    });
    expect(buildCronUpdate(job, { ...d, name: "weekday digest" })).toEqual({ params: { jobId: "j-1", patch: { name: "weekday digest" } } });
  });

  it("refuses an invalid or unchanged draft", () => {
    const d = draftFromJob(job);
    expect(buildCronUpdate(job, d)).toEqual({ error: "Nothing changed." });
    expect(buildCronUpdate(job, { ...d, message: " " })).toHaveProperty("error");
    expect(buildCronUpdate(job, { ...d, scheduleKind: "every", every: "-1" })).toHaveProperty("error");
  });
});
