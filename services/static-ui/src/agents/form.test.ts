import { describe, expect, it } from "vitest";
import { agentFields, changedFields, draftOf, EMPTY_DRAFT } from "./form";

describe("agent form", () => {
  it("creates with only the filled fields", () => {
    expect(agentFields({ ...EMPTY_DRAFT, name: " Helper ", tools: "exec, read  web" }, false)).toEqual({
      name: "Helper",
      tools: ["exec", "read", "web"],
    });
  });

  it("updates only what changed, clearing emptied fields with null", () => {
    const before = draftOf({ id: "a", name: "A", model: "m1", instructions: "be brief", tools: ["exec"] });
    expect(changedFields(before, { ...before, name: "B" })).toEqual({ name: "B" });
    expect(changedFields(before, { ...before, model: "", tools: "" })).toEqual({ model: null, tools: null });
    expect(changedFields(before, before)).toEqual({});
  });
});
