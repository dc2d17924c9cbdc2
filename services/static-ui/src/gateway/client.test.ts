import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { canonicalDeviceString } from "./canonical";
import { GatewayClient, type GatewayClientOptions, type SocketLike } from "./client";
import { signerFromKeyPair } from "./device";
import { fromBase64url } from "./encoding";
import { ErrorCode, GatewayError } from "./errors";
import type { ConnectionState } from "./types";

/** A WebSocket stand-in driven by the test: no network. */
class FakeSocket implements SocketLike {
  readyState = 0;
  onopen: SocketLike["onopen"] = null;
  onmessage: SocketLike["onmessage"] = null;
  onclose: SocketLike["onclose"] = null;
  onerror: SocketLike["onerror"] = null;
  readonly sent: Record<string, any>[] = [];
  closedWith: number | undefined;

  constructor(readonly url: string) {}

  send(data: string): void {
    this.sent.push(JSON.parse(data));
  }
  close(code?: number): void {
    this.closedWith = code ?? 1000;
    this.readyState = 3;
  }
  // Server side.
  open(): void {
    this.readyState = 1;
    this.onopen?.({});
  }
  push(frame: unknown): void {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }
  event(method: string, params: unknown): void {
    this.push({ jsonrpc: "2.0", method, params });
  }
  drop(code = 1006, reason = ""): void {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }
  last(): Record<string, any> {
    return this.sent[this.sent.length - 1]!;
  }
}

const hello = (extra: Record<string, unknown> = {}) => ({
  protocol: 1,
  server: { version: "0.1.0", connId: "c-1", instance: "wg-1" },
  features: { methods: ["health"], events: ["chat.event"] },
  snapshot: { presence: [], health: { ok: true }, uptimeMs: 1 },
  auth: { method: "token", role: "operator", scopes: ["operator.read"] },
  policy: { maxPayload: 1048576, maxBufferedBytes: 8388608, tickIntervalMs: 30000 },
  ...extra,
});

/** The GatewayError a promise rejects with (fails the test if it resolves). */
async function failure(promise: Promise<unknown>): Promise<GatewayError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof GatewayError) return err;
    throw err;
  }
  throw new Error("expected a rejection");
}

let sockets: FakeSocket[];
let states: ConnectionState[];

function makeClient(extra: Partial<GatewayClientOptions> = {}): GatewayClient {
  const client = new GatewayClient({
    url: "ws://127.0.0.1:1/ws",
    client: { id: "aisopod-control-ui", version: "0.1.0", platform: "web", mode: "ui" },
    scopes: ["operator.admin", "operator.read"],
    auth: { token: "secret" },
    socket: (url) => {
      const s = new FakeSocket(url);
      sockets.push(s);
      return s;
    },
    backoff: { baseMs: 100, maxMs: 1000, factor: 2, jitter: 0.5 },
    random: () => 0,
    ...extra,
  });
  client.on("state", (s) => states.push(s));
  return client;
}

/** Drive one socket through challenge → connect → hello; returns the connect request. */
async function handshake(sock: FakeSocket, result = hello()): Promise<Record<string, any>> {
  sock.open();
  sock.event("connect.challenge", { ts: 1, payload: { nonce: "nonce-1", ts: 1 } });
  await vi.waitFor(() => expect(sock.sent.length).toBe(1));
  const connect = sock.last();
  sock.push({ jsonrpc: "2.0", id: connect.id, result });
  return connect;
}

beforeEach(() => {
  sockets = [];
  states = [];
});

describe("handshake", () => {
  it("waits for the challenge, sends connect, and is connected on hello", async () => {
    const client = makeClient();
    client.start();
    expect(client.state.status).toBe("connecting");
    sockets[0]!.open();
    expect(client.state.status).toBe("handshaking");
    expect(sockets[0]!.sent).toEqual([]);

    const helloSeen = vi.fn();
    client.on("hello", helloSeen);
    const connect = await handshake(sockets[0]!);
    expect(connect).toMatchObject({
      jsonrpc: "2.0",
      method: "connect",
      params: {
        minProtocol: 1,
        maxProtocol: 1,
        client: { id: "aisopod-control-ui", platform: "web", mode: "ui" },
        role: "operator",
        scopes: ["operator.admin", "operator.read"],
        auth: { token: "secret" },
      },
    });
    expect(connect.params).not.toHaveProperty("resume");
    expect(connect.params).not.toHaveProperty("device");
    expect(client.state.status).toBe("connected");
    expect(client.state.hello?.server.connId).toBe("c-1");
    expect(helloSeen).toHaveBeenCalledOnce();
  });

  it("signs the challenge nonce with the device key", async () => {
    const subtle = globalThis.crypto.subtle;
    const pair = (await subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"])) as CryptoKeyPair;
    const signer = await signerFromKeyPair(subtle, pair);
    const client = makeClient({ device: async () => signer, now: () => 1764240000000 });
    client.start();
    const connect = await handshake(sockets[0]!);
    const device = connect.params.device;
    expect(device).toMatchObject({ id: signer.identity.id, publicKey: signer.identity.publicKey, nonce: "nonce-1", signedAt: 1764240000000 });
    const text = canonicalDeviceString({
      deviceId: signer.identity.id,
      clientId: "aisopod-control-ui",
      role: "operator",
      scopes: ["operator.admin", "operator.read"],
      signedAt: 1764240000000,
      nonce: "nonce-1",
    });
    const key = await subtle.importKey("raw", fromBase64url(device.publicKey), { name: "Ed25519" }, true, ["verify"]);
    const ok = await subtle.verify({ name: "Ed25519" }, key, fromBase64url(device.signature), new TextEncoder().encode(text));
    expect(ok).toBe(true);
  });

  it("connects without a device when the signer is unavailable", async () => {
    const client = makeClient({ device: async () => { throw new Error("no Ed25519"); } });
    client.start();
    const connect = await handshake(sockets[0]!);
    expect(connect.params).not.toHaveProperty("device");
    expect(client.state.status).toBe("connected");
  });

  it("emits the device token the server issues", async () => {
    const client = makeClient();
    const tokens: string[] = [];
    client.on("deviceToken", (t) => tokens.push(t));
    client.start();
    await handshake(sockets[0]!, hello({ auth: { method: "token", role: "operator", scopes: [], deviceToken: "dt-1" } }));
    expect(tokens).toEqual(["dt-1"]);
  });
});

describe("requests", () => {
  it("correlates replies by id in any order and surfaces error codes", async () => {
    const client = makeClient();
    client.start();
    await handshake(sockets[0]!);
    const sock = sockets[0]!;
    const a = client.request("health");
    const b = client.request("status", { x: 1 });
    const c = client.request("chat.send", { sessionKey: "s" });
    const [ra, rb, rc] = sock.sent.slice(1);
    expect(ra).toMatchObject({ jsonrpc: "2.0", method: "health", params: {} });
    expect(rb).toMatchObject({ method: "status", params: { x: 1 } });
    expect(new Set([ra!.id, rb!.id, rc!.id]).size).toBe(3);

    sock.push({ jsonrpc: "2.0", id: rb!.id, result: { b: true } });
    sock.push({
      jsonrpc: "2.0",
      id: rc!.id,
      error: { code: -32003, message: "missing scope: operator.write", data: { code: "MISSING_SCOPE", requiredScope: "operator.write" } },
    });
    sock.push({ jsonrpc: "2.0", id: ra!.id, result: { ok: true } });

    await expect(a).resolves.toEqual({ ok: true });
    await expect(b).resolves.toEqual({ b: true });
    const err = await c.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GatewayError);
    expect((err as GatewayError).codeName).toBe("FORBIDDEN");
    expect((err as GatewayError).dataCode).toBe("MISSING_SCOPE");
    expect((err as GatewayError).data.requiredScope).toBe("operator.write");
  });

  it("rejects at once when not connected", async () => {
    const client = makeClient();
    const err = await failure(client.request("health"));
    expect(err.code).toBe(ErrorCode.DISCONNECTED);
    expect(sockets).toHaveLength(0);
  });

  it("refuses a request larger than the server's maxPayload", async () => {
    const client = makeClient();
    client.start();
    await handshake(sockets[0]!, hello({ policy: { maxPayload: 100, maxBufferedBytes: 1, tickIntervalMs: 30000 } }));
    const err = await failure(client.request("chat.send", { message: "x".repeat(200) }));
    expect(err.code).toBe(ErrorCode.INVALID_PARAMS);
    expect(sockets[0]!.sent).toHaveLength(1);
  });

  it("times out a request with no reply", async () => {
    const client = makeClient({ requestTimeoutMs: 50 });
    client.start();
    await handshake(sockets[0]!);
    vi.useFakeTimers();
    try {
      const pending = failure(client.request("health"));
      vi.advanceTimersByTime(60);
      const err = await pending;
      expect(err.code).toBe(ErrorCode.CLIENT_TIMEOUT);
      // A late reply is ignored.
      sockets[0]!.push({ jsonrpc: "2.0", id: sockets[0]!.last().id, result: 1 });
    } finally {
      vi.useRealTimers();
    }
  });
});

describe("events", () => {
  it("dispatches by name and to *, tracks the highest seq, drops duplicates", async () => {
    const client = makeClient();
    client.start();
    await handshake(sockets[0]!);
    const chat: unknown[] = [];
    const all: string[] = [];
    client.onEvent("chat.event", (p) => chat.push(p));
    const off = client.onEvent("*", (_p, meta) => all.push(`${meta.name}:${meta.seq ?? "-"}`));
    const sock = sockets[0]!;
    sock.event("chat.event", { seq: 10, ts: 1, payload: { state: "delta", n: 1 } });
    sock.event("tick", { ts: 2, payload: { ts: 2 } });
    sock.event("chat.event", { seq: 12, ts: 3, payload: { state: "final" } });
    sock.event("chat.event", { seq: 10, ts: 1, payload: { state: "delta", n: 1 } });
    sock.event("presence.changed", { seq: 11, payload: { presence: [] } });
    expect(chat).toEqual([{ state: "delta", n: 1 }, { state: "final" }]);
    expect(all).toEqual(["chat.event:10", "tick:-", "chat.event:12", "presence.changed:11"]);
    expect(client.lastSeq).toBe(12);
    off();
    sock.event("tick", { ts: 4, payload: { ts: 4 } });
    expect(all).toHaveLength(4);
  });
});

describe("reconnect", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it("fails pending requests, backs off, resumes from lastSeq and signals a gap", async () => {
    const client = makeClient();
    const refetch = vi.fn();
    client.on("refetch", refetch);
    client.start();
    await handshake(sockets[0]!);
    sockets[0]!.event("cron.event", { seq: 41, payload: {} });
    const pending = failure(client.request("status"));

    sockets[0]!.drop(1012, "service restart");
    const err = await pending;
    expect(err.code).toBe(ErrorCode.DISCONNECTED);
    expect(err.message).toContain("1012");
    expect(client.state.status).toBe("waiting");
    expect(client.state.attempt).toBe(1);

    // random() = 0 with jitter 0.5: first retry after half of baseMs.
    vi.advanceTimersByTime(49);
    expect(sockets).toHaveLength(1);
    vi.advanceTimersByTime(1);
    expect(sockets).toHaveLength(2);

    const connect = await handshake(sockets[1]!, hello({ resume: { replayed: 0, gap: true } }));
    expect(connect.params.resume).toEqual({ lastSeq: 41 });
    expect(client.state).toMatchObject({ status: "connected", attempt: 0 });
    expect(refetch).toHaveBeenCalledWith({ reason: "gap" });
  });

  it("does not signal refetch when the resume replayed everything", async () => {
    const client = makeClient();
    const refetch = vi.fn();
    client.on("refetch", refetch);
    client.start();
    await handshake(sockets[0]!);
    sockets[0]!.event("cron.event", { seq: 5, payload: {} });
    sockets[0]!.drop();
    vi.advanceTimersByTime(100);
    await handshake(sockets[1]!, hello({ resume: { replayed: 2, gap: false } }));
    expect(refetch).not.toHaveBeenCalled();
  });

  it("signals refetch after a reconnect that could not resume", async () => {
    const client = makeClient();
    const refetch = vi.fn();
    client.on("refetch", refetch);
    client.start();
    await handshake(sockets[0]!);
    sockets[0]!.drop();
    vi.advanceTimersByTime(100);
    const connect = await handshake(sockets[1]!);
    expect(connect.params).not.toHaveProperty("resume");
    expect(refetch).toHaveBeenCalledWith({ reason: "reconnect" });
  });

  it("grows the delay while the gateway stays unreachable, capped", () => {
    const client = makeClient();
    client.start();
    const delays: number[] = [];
    for (let i = 0; i < 6; i++) {
      const before = Date.now();
      sockets[i]!.drop(1006);
      delays.push(client.state.nextRetryAt! - before);
      vi.advanceTimersByTime(client.state.nextRetryAt! - before);
      expect(sockets).toHaveLength(i + 2);
    }
    expect(delays).toEqual([50, 100, 200, 400, 500, 500]);
  });

  it("polls while the device awaits pairing, showing the request id", async () => {
    const client = makeClient({ pairingRetryMs: 10_000 });
    client.start();
    sockets[0]!.open();
    sockets[0]!.event("connect.challenge", { ts: 1, payload: { nonce: "n", ts: 1 } });
    await vi.waitFor(() => expect(sockets[0]!.sent).toHaveLength(1));
    sockets[0]!.push({
      jsonrpc: "2.0",
      id: sockets[0]!.last().id,
      error: { code: -32011, message: "device not paired", data: { code: "NOT_PAIRED", requestId: "req-7" } },
    });
    expect(client.state).toMatchObject({ status: "pairing", pairingRequestId: "req-7" });
    expect(sockets[0]!.closedWith).toBeDefined();
    vi.advanceTimersByTime(9_999);
    expect(sockets).toHaveLength(1);
    vi.advanceTimersByTime(1);
    expect(sockets).toHaveLength(2);
  });

  it("stops on a bad credential and keeps the error", async () => {
    const client = makeClient();
    client.start();
    sockets[0]!.open();
    sockets[0]!.event("connect.challenge", { ts: 1, payload: { nonce: "n", ts: 1 } });
    await vi.waitFor(() => expect(sockets[0]!.sent).toHaveLength(1));
    sockets[0]!.push({
      jsonrpc: "2.0",
      id: sockets[0]!.last().id,
      error: { code: -32001, message: "token mismatch", data: { code: "AUTH_TOKEN_MISMATCH" } },
    });
    sockets[0]!.drop(1008, "unauthenticated");
    expect(client.state.status).toBe("failed");
    expect(client.state.error?.dataCode).toBe("AUTH_TOKEN_MISMATCH");
    vi.advanceTimersByTime(120_000);
    expect(sockets).toHaveLength(1);
  });

  it("reconnects when the gateway goes silent past two tick intervals", async () => {
    let now = 1_000_000;
    const client = makeClient({ now: () => now });
    client.start();
    await handshake(sockets[0]!, hello({ policy: { maxPayload: 1 << 20, maxBufferedBytes: 1, tickIntervalMs: 1000 } }));
    now += 6000;
    vi.advanceTimersByTime(1000);
    expect(client.state.status).toBe("connected");
    sockets[0]!.event("tick", { ts: now, payload: { ts: now } });
    now += 7001;
    vi.advanceTimersByTime(1000);
    expect(client.state.status).toBe("waiting");
    expect(sockets[0]!.closedWith).toBe(4000);
  });

  it("stop() closes, fails pending requests and never reconnects", async () => {
    const client = makeClient();
    client.start();
    await handshake(sockets[0]!);
    const pending = failure(client.request("health"));
    client.stop();
    expect((await pending).code).toBe(ErrorCode.DISCONNECTED);
    expect(client.state.status).toBe("idle");
    vi.advanceTimersByTime(60_000);
    expect(sockets).toHaveLength(1);
  });
});
