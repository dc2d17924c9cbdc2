import { describe, expect, it } from "vitest";
import { canonicalDeviceString } from "./canonical";

const fields = {
  deviceId: "ab".repeat(32),
  clientId: "aisopod-control-ui",
  role: "operator",
  scopes: ["operator.admin", "operator.read", "operator.write"],
  signedAt: 1764240000123,
  nonce: "n-0123",
};

describe("canonicalDeviceString", () => {
  it("joins the fields with | and the scopes with , in the order sent", () => {
    expect(canonicalDeviceString(fields)).toBe(
      `v1|${"ab".repeat(32)}|aisopod-control-ui|operator|operator.admin,operator.read,operator.write|1764240000123|n-0123`,
    );
  });

  it("keeps the scopes' order (the server verifies exactly what was sent)", () => {
    const reordered = canonicalDeviceString({ ...fields, scopes: ["operator.write", "operator.admin"] });
    expect(reordered).toContain("|operator.write,operator.admin|");
  });

  it("writes no scopes as an empty field", () => {
    expect(canonicalDeviceString({ ...fields, scopes: [] })).toBe(
      `v1|${"ab".repeat(32)}|aisopod-control-ui|operator||1764240000123|n-0123`,
    );
  });

  it("refuses separators inside fields", () => {
    expect(() => canonicalDeviceString({ ...fields, nonce: "a|b" })).toThrow();
    expect(() => canonicalDeviceString({ ...fields, scopes: ["a,b"] })).toThrow();
    expect(() => canonicalDeviceString({ ...fields, signedAt: 1.5 })).toThrow();
  });
});
