import { describe, expect, it } from "vitest";
import { applyMergePatch, fieldLabel, formFields, getPath, mergePatch, parseFieldInput, setPath } from "./schema";

const schema = {
  type: "object",
  title: "GatewayConfig",
  properties: {
    auth: { $ref: "#/$defs/Auth" },
    logLevel: { type: "string", enum: ["debug", "info", "warning"], title: "Log Level" },
    port: { type: "integer", description: "listen port" },
    ratio: { anyOf: [{ type: "number" }, { type: "null" }], default: null },
    tags: { type: "array", items: { type: "string" } },
    hooks: { anyOf: [{ $ref: "#/$defs/Hooks" }, { type: "null" }] },
  },
  $defs: {
    Auth: {
      type: "object",
      properties: {
        mode: { enum: ["token", "password", "none"], type: "string" },
        token: { type: "string", writeOnly: true },
        lockout: { type: "boolean" },
      },
    },
    Hooks: { type: "object", properties: { enabled: { type: "boolean" }, path: { type: ["string", "null"] } } },
  },
};

describe("formFields", () => {
  it("derives simple leaves through $ref and nullable unions", () => {
    const fields = formFields(schema);
    expect(fields.map((f) => [f.path.join("."), f.kind, f.nullable])).toEqual([
      ["auth.mode", "enum", false],
      ["auth.token", "secret", false],
      ["auth.lockout", "boolean", false],
      ["logLevel", "enum", false],
      ["port", "integer", false],
      ["ratio", "number", true],
      ["hooks.enabled", "boolean", false],
      ["hooks.path", "string", true],
    ]);
    expect(fields[3]).toMatchObject({ label: "Log Level", options: ["debug", "info", "warning"] });
    expect(fields[4]!.description).toBe("listen port");
  });
});

describe("paths and patches", () => {
  it("gets and sets nested values without mutating", () => {
    const base = { auth: { mode: "token" }, port: 1 };
    const next = setPath(base, ["auth", "lockout"], true);
    expect(next).toEqual({ auth: { mode: "token", lockout: true }, port: 1 });
    expect(base).toEqual({ auth: { mode: "token" }, port: 1 });
    expect(getPath(next, ["auth", "lockout"])).toBe(true);
    expect(getPath(next, ["nope", "x"])).toBeUndefined();
  });

  it("computes a merge patch that applies back to the target", () => {
    const from = { a: 1, b: { c: 2, d: 3 }, e: [1, 2], gone: true };
    const to = { a: 1, b: { c: 5, d: 3 }, e: [1], added: "x" };
    const patch = mergePatch(from, to);
    expect(patch).toEqual({ gone: null, b: { c: 5 }, e: [1], added: "x" });
    expect(applyMergePatch(from, patch)).toEqual(to);
  });
});

describe("parseFieldInput", () => {
  it("parses by kind and treats empty optional fields as null", () => {
    const f = (kind: any, nullable = false, options?: any[]) => ({ path: ["x"], label: "x", kind, nullable, options });
    expect(parseFieldInput(f("integer"), "42")).toEqual({ value: 42 });
    expect(parseFieldInput(f("integer"), "4.2")).toEqual({ error: "an integer" });
    expect(parseFieldInput(f("number", true), " ")).toEqual({ value: null });
    expect(parseFieldInput(f("number"), "x")).toEqual({ error: "a number" });
    expect(parseFieldInput(f("enum", false, ["a", 2]), "2")).toEqual({ value: 2 });
    expect(parseFieldInput(f("boolean"), "true")).toEqual({ value: true });
    expect(parseFieldInput(f("string"), " keep ")).toEqual({ value: " keep " });
  });
});

describe("fieldLabel", () => {
  it("keeps a written title and rebuilds pydantic's key-derived one from the key", () => {
    expect(fieldLabel("logLevel", "Log Level")).toBe("Log Level");
    expect(fieldLabel("port", "Listen port")).toBe("Listen port");
    expect(fieldLabel("handshakeTimeoutMs", "Handshaketimeoutms")).toBe("Handshake timeout (ms)");
    expect(fieldLabel("maxPayloadPreHello", "Maxpayloadprehello")).toBe("Max payload pre hello");
    expect(fieldLabel("maxBodyBytes", undefined)).toBe("Max body (bytes)");
    expect(fieldLabel("allowedOrigins", "Allowedorigins")).toBe("Allowed origins");
    expect(fieldLabel("apiKey", undefined)).toBe("Api key");
    expect(fieldLabel("ms", undefined)).toBe("Ms");
  });
});
