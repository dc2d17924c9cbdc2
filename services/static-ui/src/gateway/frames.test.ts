import { describe, expect, it } from "vitest";
import { decodeFrames, encodeRequest } from "./frames";

describe("decodeFrames", () => {
  it("reads a success response", () => {
    expect(decodeFrames('{"jsonrpc":"2.0","id":"r1","result":{"ok":true}}')).toEqual([
      { kind: "result", id: "r1", result: { ok: true } },
    ]);
  });

  it("keeps a null result as a result", () => {
    expect(decodeFrames('{"jsonrpc":"2.0","id":7,"result":null}')).toEqual([
      { kind: "result", id: 7, result: null },
    ]);
  });

  it("reads an error with its data", () => {
    const [frame] = decodeFrames(
      JSON.stringify({
        jsonrpc: "2.0",
        id: "r2",
        error: {
          code: -32003,
          message: "missing scope: operator.write",
          data: { code: "MISSING_SCOPE", requiredScope: "operator.write" },
        },
      }),
    );
    expect(frame).toEqual({
      kind: "error",
      id: "r2",
      error: {
        code: -32003,
        message: "missing scope: operator.write",
        data: { code: "MISSING_SCOPE", requiredScope: "operator.write" },
      },
    });
  });

  it("reads an error for an unparseable frame as id null", () => {
    const [frame] = decodeFrames('{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"bad"}}');
    expect(frame).toEqual({ kind: "error", id: null, error: { code: -32700, message: "bad" } });
  });

  it("unwraps event params into seq, ts and payload", () => {
    const [frame] = decodeFrames(
      '{"jsonrpc":"2.0","method":"chat.event","params":{"seq":1042,"ts":1764240000000,"payload":{"state":"delta"}}}',
    );
    expect(frame).toEqual({
      kind: "event",
      name: "chat.event",
      seq: 1042,
      ts: 1764240000000,
      payload: { state: "delta" },
    });
  });

  it("reads events outside the stream in the same shape, without seq (connect.challenge)", () => {
    const [frame] = decodeFrames(
      '{"jsonrpc":"2.0","method":"connect.challenge","params":{"ts":5,"payload":{"nonce":"n1","ts":5}}}',
    );
    expect(frame).toMatchObject({ kind: "event", name: "connect.challenge", ts: 5, payload: { nonce: "n1", ts: 5 } });
    expect(frame).not.toHaveProperty("seq");
  });

  it("accepts frames without the jsonrpc member", () => {
    expect(decodeFrames('{"id":"r1","result":1}')).toEqual([{ kind: "result", id: "r1", result: 1 }]);
  });

  it("splits a batch into frames", () => {
    const frames = decodeFrames('[{"id":"a","result":1},{"id":"b","error":{"code":-32601,"message":"no"}}]');
    expect(frames.map((f) => f.kind)).toEqual(["result", "error"]);
  });

  it("flags garbage as invalid instead of throwing", () => {
    expect(decodeFrames("not json")).toEqual([{ kind: "invalid", reason: "not JSON" }]);
    expect(decodeFrames("[]")[0]!.kind).toBe("invalid");
    expect(decodeFrames("42")[0]!.kind).toBe("invalid");
    expect(decodeFrames('{"id":"x"}')[0]!.kind).toBe("invalid");
    expect(decodeFrames('{"result":1}')[0]!.kind).toBe("invalid");
    expect(decodeFrames('{"id":"x","error":{"message":"no code"}}')[0]!.kind).toBe("invalid");
  });
});

describe("encodeRequest", () => {
  it("writes a JSON-RPC 2.0 request", () => {
    expect(JSON.parse(encodeRequest("r9", "health", undefined))).toEqual({
      jsonrpc: "2.0",
      id: "r9",
      method: "health",
      params: {},
    });
  });
});
