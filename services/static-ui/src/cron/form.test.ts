import { describe, expect, it } from "vitest";
import { buildCronAdd, describeSchedule, EMPTY_CRON } from "./form";

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
