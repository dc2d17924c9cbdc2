/**
 * The JSON-RPC 2.0 codec of docs/protocol/websocket.md: text in, typed frames out. Pure: no socket.
 *
 * Server events are notifications with one shape, `params: {seq?, ts, payload}`: broadcast
 * events carry `seq`; the ones outside the event stream (`connect.challenge`, `tick`,
 * `shutdown`, targeted frames) do not.
 */

import type { RpcErrorObject } from "./errors";

export type RpcId = string | number;

export type IncomingFrame =
  | { kind: "result"; id: RpcId; result: unknown }
  | { kind: "error"; id: RpcId | null; error: RpcErrorObject }
  | { kind: "event"; name: string; seq?: number; ts?: number; payload: unknown }
  | { kind: "invalid"; reason: string };

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isId(value: unknown): value is RpcId {
  return typeof value === "string" || (typeof value === "number" && Number.isFinite(value));
}

function toErrorObject(value: unknown): RpcErrorObject | undefined {
  if (!isRecord(value) || typeof value.code !== "number") return undefined;
  const message = typeof value.message === "string" ? value.message : "error";
  const data = isRecord(value.data) ? value.data : undefined;
  return data ? { code: value.code, message, data } : { code: value.code, message };
}

function decodeOne(value: unknown): IncomingFrame {
  if (!isRecord(value)) return { kind: "invalid", reason: "frame is not an object" };
  if (typeof value.method === "string") {
    const params = isRecord(value.params) ? value.params : {};
    const frame: IncomingFrame = { kind: "event", name: value.method, payload: params.payload };
    if (typeof params.seq === "number" && Number.isFinite(params.seq)) frame.seq = params.seq;
    if (typeof params.ts === "number") frame.ts = params.ts;
    return frame;
  }
  if ("error" in value) {
    const error = toErrorObject(value.error);
    if (!error) return { kind: "invalid", reason: "malformed error object" };
    return { kind: "error", id: isId(value.id) ? value.id : null, error };
  }
  if ("result" in value) {
    if (!isId(value.id)) return { kind: "invalid", reason: "result without id" };
    return { kind: "result", id: value.id, result: value.result };
  }
  return { kind: "invalid", reason: "neither event, result nor error" };
}

/** Decode one text frame; a batch (array) yields one frame per element. */
export function decodeFrames(text: string): IncomingFrame[] {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return [{ kind: "invalid", reason: "not JSON" }];
  }
  if (Array.isArray(value)) {
    if (value.length === 0) return [{ kind: "invalid", reason: "empty batch" }];
    return value.map(decodeOne);
  }
  return [decodeOne(value)];
}

export function encodeRequest(id: RpcId, method: string, params: unknown): string {
  return JSON.stringify({ jsonrpc: "2.0", id, method, params: params ?? {} });
}
