import { describe, expect, it } from "vitest";
import { ErrorCode, GatewayError } from "./errors";
import { challengeNonce, connectParams, connectVerdict } from "./handshake";

const client = { id: "aisopod-control-ui", version: "0.1.0", platform: "web", mode: "ui" };

describe("connectParams", () => {
  it("writes the protocol range, client, role, scopes and auth", () => {
    expect(
      connectParams({ client, role: "operator", scopes: ["operator.read"], auth: { token: "t" } }),
    ).toEqual({
      minProtocol: 1,
      maxProtocol: 1,
      client,
      role: "operator",
      scopes: ["operator.read"],
      auth: { token: "t" },
    });
  });

  it("adds resume only when a seq was seen, and the device when given", () => {
    const device = { id: "d", publicKey: "p", signature: "s", signedAt: 1, nonce: "n" };
    const params = connectParams({ client, role: "operator", scopes: [], device, lastSeq: 0 });
    expect(params.resume).toEqual({ lastSeq: 0 });
    expect(params.device).toEqual(device);
    expect(params).not.toHaveProperty("auth");
    expect(connectParams({ client, role: "operator", scopes: [] })).not.toHaveProperty("resume");
  });
});

describe("challengeNonce", () => {
  it("finds the nonce or nothing", () => {
    expect(challengeNonce({ nonce: "abc", ts: 1 })).toBe("abc");
    expect(challengeNonce({ nonce: "" })).toBeUndefined();
    expect(challengeNonce(null)).toBeUndefined();
    expect(challengeNonce({ nonce: 5 })).toBeUndefined();
  });
});

describe("connectVerdict", () => {
  const err = (code: number, data: Record<string, unknown> = {}) => new GatewayError(code, "x", data);

  it("polls for pairing with the request id", () => {
    expect(connectVerdict(err(ErrorCode.NOT_PAIRED, { code: "NOT_PAIRED", requestId: "req-1" }))).toEqual({
      kind: "pairing",
      requestId: "req-1",
    });
  });

  it("gives up on credential and protocol errors", () => {
    expect(connectVerdict(err(ErrorCode.UNAUTHENTICATED, { code: "AUTH_TOKEN_MISMATCH" })).kind).toBe("fatal");
    expect(connectVerdict(err(ErrorCode.UNAUTHENTICATED, { code: "AUTH_RATE_LIMITED" })).kind).toBe("fatal");
    expect(connectVerdict(err(ErrorCode.INVALID_REQUEST, { code: "PROTOCOL_MISMATCH" })).kind).toBe("fatal");
  });

  it("retries transient failures, honouring retryAfterMs", () => {
    expect(connectVerdict(err(ErrorCode.UNAVAILABLE))).toEqual({ kind: "retry" });
    expect(connectVerdict(err(ErrorCode.RATE_LIMITED, { retryAfterMs: 1500 }))).toEqual({
      kind: "retry",
      minDelayMs: 1500,
    });
  });
});
