/**
 * The Control UI's gateway connection: one WebSocket speaking docs/protocol/websocket.md.
 *
 * Handshake (challenge → connect → hello), request/response correlation by id, event
 * dispatch with `seq` tracking, reconnect with exponential backoff + jitter, resume from
 * the last seen `seq`, and a "refetch" signal when the server could not replay everything.
 * The framing, backoff and handshake decisions live in pure modules beside this one; this
 * class only moves frames and keeps timers.
 */

import { backoffDelay, DEFAULT_BACKOFF, type BackoffOptions } from "./backoff";
import { proveDevice, type DeviceProof, type DeviceSigner } from "./device";
import { Emitter } from "./emitter";
import { ErrorCode, GatewayError } from "./errors";
import { decodeFrames, encodeRequest, type IncomingFrame, type RpcId } from "./frames";
import { challengeNonce, connectParams, connectVerdict, type ConnectVerdict } from "./handshake";
import type {
  AuthCredential,
  ClientInfo,
  ConnectionState,
  EventMeta,
  Hello,
} from "./types";

/** The part of the browser WebSocket the client uses (a fake one in tests). */
export interface SocketLike {
  readonly readyState: number;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

export type SocketFactory = (url: string) => SocketLike;

export interface GatewayClientOptions {
  url: string;
  client: ClientInfo;
  role?: string;
  scopes: readonly string[];
  auth?: AuthCredential;
  /** Resolves the device signer; null or a rejection means "connect without a device". */
  device?: () => Promise<DeviceSigner | null>;
  socket?: SocketFactory;
  backoff?: BackoffOptions;
  /** Poll interval while the device awaits pairing approval. */
  pairingRetryMs?: number;
  /** Default per-request timeout. */
  requestTimeoutMs?: number;
  /** How long after the socket opens `hello` must arrive. */
  handshakeTimeoutMs?: number;
  random?: () => number;
  now?: () => number;
}

export interface RequestOptions {
  timeoutMs?: number;
}

export type EventListener = (payload: unknown, meta: EventMeta) => void;

interface ClientEvents extends Record<string, unknown> {
  state: ConnectionState;
  hello: Hello;
  /** Local state may be stale: events were missed (`gap`) or could not be resumed. */
  refetch: { reason: "gap" | "reconnect" };
  deviceToken: string;
  /** A frame the client could not use (bad JSON, an error with `id: null`, …). */
  protocolError: { reason: string; error?: GatewayError };
}

interface Pending {
  method: string;
  resolve: (value: unknown) => void;
  reject: (error: GatewayError) => void;
  timer: ReturnType<typeof setTimeout>;
}

const OPEN = 1;
const DEFAULT_TICK_MS = 30_000;
const RECENT_SEQS = 1024;

export class GatewayClient {
  private readonly opts: Required<
    Omit<GatewayClientOptions, "auth" | "device" | "role">
  > & Pick<GatewayClientOptions, "auth" | "device"> & { role: string };
  private readonly emitter = new Emitter<ClientEvents>();
  private readonly listeners = new Map<string, Set<EventListener>>();
  private readonly pending = new Map<RpcId, Pending>();
  private readonly recentSeqs: number[] = [];
  private readonly recentSet = new Set<number>();

  private ws: SocketLike | undefined;
  private running = false;
  private nextId = 1;
  private connectId: string | undefined;
  private connectSent = false;
  private verdict: { verdict: ConnectVerdict; error: GatewayError } | undefined;
  private everConnected = false;
  private lastFrameAt = 0;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private handshakeTimer: ReturnType<typeof setTimeout> | undefined;
  private watchdogTimer: ReturnType<typeof setInterval> | undefined;
  private _state: ConnectionState = { status: "idle", attempt: 0 };
  private _lastSeq: number | undefined;

  constructor(options: GatewayClientOptions) {
    this.opts = {
      role: "operator",
      socket: (url) => new WebSocket(url) as unknown as SocketLike,
      backoff: DEFAULT_BACKOFF,
      pairingRetryMs: 10_000,
      requestTimeoutMs: 60_000,
      handshakeTimeoutMs: 15_000,
      random: Math.random,
      now: Date.now,
      ...options,
    };
  }

  get state(): ConnectionState {
    return this._state;
  }

  /** The highest event `seq` seen; sent as `resume.lastSeq` on reconnect. */
  get lastSeq(): number | undefined {
    return this._lastSeq;
  }

  get url(): string {
    return this.opts.url;
  }

  on<K extends keyof ClientEvents>(name: K, listener: (value: ClientEvents[K]) => void) {
    return this.emitter.on(name, listener);
  }

  /** Listen to one server event by name, or every event with `"*"`. */
  onEvent(name: string, listener: EventListener): () => void {
    let set = this.listeners.get(name);
    if (!set) {
      set = new Set();
      this.listeners.set(name, set);
    }
    set.add(listener);
    return () => set.delete(listener);
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.open();
  }

  /** Close for good; pending requests fail with DISCONNECTED. */
  stop(): void {
    this.running = false;
    this.clearTimer("retry");
    this.drop(GatewayError.disconnected("closed by the client"), 1000);
    this.setState({ status: "idle", attempt: 0 });
  }

  /** Skip the wait of `waiting`/`pairing` and try now. */
  retryNow(): void {
    if (!this.running || this.ws) return;
    this.clearTimer("retry");
    this.open();
  }

  request<T = unknown>(method: string, params: unknown = {}, options: RequestOptions = {}): Promise<T> {
    const ws = this.ws;
    if (!ws || this._state.status !== "connected" || ws.readyState !== OPEN) {
      return Promise.reject(GatewayError.disconnected("not connected to the gateway"));
    }
    const id = `r${this.nextId++}`;
    const text = encodeRequest(id, method, params);
    const limit = this._state.hello?.policy?.maxPayload;
    if (typeof limit === "number" && new TextEncoder().encode(text).length > limit) {
      return Promise.reject(
        new GatewayError(ErrorCode.INVALID_PARAMS, `request exceeds maxPayload (${limit} bytes)`, {
          code: "PAYLOAD_TOO_LARGE",
        }),
      );
    }
    const timeoutMs = options.timeoutMs ?? this.opts.requestTimeoutMs;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(
          new GatewayError(ErrorCode.CLIENT_TIMEOUT, `${method}: no reply within ${timeoutMs} ms`, {
            code: "CLIENT_TIMEOUT",
          }),
        );
      }, timeoutMs);
      this.pending.set(id, { method, resolve: resolve as (v: unknown) => void, reject, timer });
      ws.send(text);
    });
  }

  // --- socket lifecycle -------------------------------------------------------------

  private open(): void {
    this.connectSent = false;
    this.connectId = undefined;
    this.verdict = undefined;
    this.setState({ ...this.carry(), status: "connecting" });
    let ws: SocketLike;
    try {
      ws = this.opts.socket(this.opts.url);
    } catch (err) {
      // A malformed URL throws synchronously; retrying cannot fix it.
      this.running = false;
      const message = err instanceof Error ? err.message : String(err);
      this.setState({
        status: "failed",
        attempt: this._state.attempt,
        error: new GatewayError(ErrorCode.INVALID_REQUEST, message, { code: "BAD_URL" }),
      });
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      if (this.ws !== ws) return;
      this.lastFrameAt = this.opts.now();
      this.setState({ ...this.carry(), status: "handshaking" });
      this.handshakeTimer = setTimeout(() => {
        this.fail(new GatewayError(ErrorCode.CLIENT_TIMEOUT, "handshake timed out", {
          code: "HANDSHAKE_TIMEOUT",
        }));
      }, this.opts.handshakeTimeoutMs);
    };
    ws.onmessage = (ev) => {
      if (this.ws !== ws) return;
      this.lastFrameAt = this.opts.now();
      if (typeof ev.data !== "string") {
        this.emitter.emit("protocolError", { reason: "binary frame ignored" });
        return;
      }
      for (const frame of decodeFrames(ev.data)) this.handle(frame);
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      const why = ev.reason ? `${ev.code} ${ev.reason}` : String(ev.code);
      this.fail(GatewayError.disconnected(`connection closed (${why})`));
    };
    ws.onerror = () => {
      // The close event follows with the details; nothing to do here.
    };
  }

  /** Fields a state change keeps from the current state. */
  private carry(): Pick<ConnectionState, "attempt" | "error"> {
    const { attempt, error } = this._state;
    return error ? { attempt, error } : { attempt };
  }

  /** The socket is gone (or must go): fail what it carried and decide what comes next. */
  private fail(error: GatewayError): void {
    if (!this.ws) return;
    const decided = this.verdict;
    this.drop(error, 4000);
    if (!this.running) return;
    const reason = decided?.error ?? error;
    const verdict = decided?.verdict ?? { kind: "retry" as const };
    const attempt = this._state.attempt;
    if (verdict.kind === "fatal") {
      this.running = false;
      this.setState({ status: "failed", attempt, error: reason });
      return;
    }
    if (verdict.kind === "pairing") {
      const nextRetryAt = this.opts.now() + this.opts.pairingRetryMs;
      const state: ConnectionState = { status: "pairing", attempt, error: reason, nextRetryAt };
      if (verdict.requestId) state.pairingRequestId = verdict.requestId;
      this.setState(state);
      this.schedule(this.opts.pairingRetryMs);
      return;
    }
    const delay = Math.max(
      backoffDelay(attempt, this.opts.backoff, this.opts.random),
      verdict.minDelayMs ?? 0,
    );
    this.setState({
      status: "waiting",
      attempt: attempt + 1,
      error: reason,
      nextRetryAt: this.opts.now() + delay,
    });
    this.schedule(delay);
  }

  /** Detach and close the socket, fail every pending request. */
  private drop(error: GatewayError, code: number): void {
    const ws = this.ws;
    this.ws = undefined;
    this.clearTimer("handshake");
    this.clearTimer("watchdog");
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      try {
        ws.close(code, "client closing");
      } catch {
        // Already closed.
      }
    }
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      this.pending.delete(id);
      p.reject(new GatewayError(error.code, `${p.method}: ${error.message}`, error.data));
    }
  }

  private schedule(delayMs: number): void {
    this.clearTimer("retry");
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      if (this.running && !this.ws) this.open();
    }, delayMs);
  }

  private clearTimer(which: "retry" | "handshake" | "watchdog"): void {
    if (which === "retry" && this.retryTimer !== undefined) {
      clearTimeout(this.retryTimer);
      this.retryTimer = undefined;
    } else if (which === "handshake" && this.handshakeTimer !== undefined) {
      clearTimeout(this.handshakeTimer);
      this.handshakeTimer = undefined;
    } else if (which === "watchdog" && this.watchdogTimer !== undefined) {
      clearInterval(this.watchdogTimer);
      this.watchdogTimer = undefined;
    }
  }

  private setState(state: ConnectionState): void {
    this._state = state;
    this.emitter.emit("state", state);
  }

  // --- frames -----------------------------------------------------------------------

  private handle(frame: IncomingFrame): void {
    switch (frame.kind) {
      case "event":
        if (frame.name === "connect.challenge" && !this.connectSent) {
          void this.sendConnect(challengeNonce(frame.payload));
        } else {
          this.dispatch(frame.name, frame.payload, frame.seq, frame.ts);
        }
        return;
      case "result":
        if (frame.id === this.connectId) this.onHello(frame.result as Hello);
        else this.settle(frame.id, (p) => p.resolve(frame.result));
        return;
      case "error": {
        const error = GatewayError.fromRpc(frame.error);
        if (frame.id !== null && frame.id === this.connectId) this.onConnectError(error);
        else if (frame.id === null) this.emitter.emit("protocolError", { reason: error.message, error });
        else this.settle(frame.id, (p) => p.reject(error));
        return;
      }
      case "invalid":
        this.emitter.emit("protocolError", { reason: frame.reason });
        return;
    }
  }

  private settle(id: RpcId, action: (p: Pending) => void): void {
    const p = this.pending.get(id);
    if (!p) return; // Late reply to a request that timed out.
    this.pending.delete(id);
    clearTimeout(p.timer);
    action(p);
  }

  private dispatch(name: string, payload: unknown, seq?: number, ts?: number): void {
    const meta: EventMeta = { name };
    if (seq !== undefined) {
      // A replayed event may also arrive live around a resume; deliver it once.
      if (this.recentSet.has(seq)) return;
      this.remember(seq);
      meta.seq = seq;
      if (this._lastSeq === undefined || seq > this._lastSeq) this._lastSeq = seq;
    }
    if (ts !== undefined) meta.ts = ts;
    for (const key of [name, "*"]) {
      const set = this.listeners.get(key);
      if (!set) continue;
      for (const listener of [...set]) {
        try {
          listener(payload, meta);
        } catch (err) {
          queueMicrotask(() => {
            throw err;
          });
        }
      }
    }
  }

  private remember(seq: number): void {
    this.recentSeqs.push(seq);
    this.recentSet.add(seq);
    if (this.recentSeqs.length > RECENT_SEQS) this.recentSet.delete(this.recentSeqs.shift()!);
  }

  private async sendConnect(nonce: string | undefined): Promise<void> {
    this.connectSent = true;
    const ws = this.ws;
    let device: DeviceProof | undefined;
    if (nonce && this.opts.device) {
      try {
        const signer = await this.opts.device();
        if (signer) {
          device = await proveDevice(signer, {
            clientId: this.opts.client.id,
            role: this.opts.role,
            scopes: this.opts.scopes,
            nonce,
            signedAt: Math.floor(this.opts.now()),
          });
        }
      } catch {
        device = undefined; // No usable identity: connect without one.
      }
    }
    if (this.ws !== ws || !ws || ws.readyState !== OPEN) return;
    this.connectId = `c${this.nextId++}`;
    const params = connectParams({
      client: this.opts.client,
      role: this.opts.role,
      scopes: this.opts.scopes,
      ...(this.opts.auth ? { auth: this.opts.auth } : {}),
      ...(device ? { device } : {}),
      ...(this._lastSeq !== undefined ? { lastSeq: this._lastSeq } : {}),
    });
    ws.send(encodeRequest(this.connectId, "connect", params));
  }

  private onHello(hello: Hello): void {
    this.clearTimer("handshake");
    this.connectId = undefined;
    this.setState({ status: "connected", attempt: 0, hello });
    this.armWatchdog(hello.policy?.tickIntervalMs ?? DEFAULT_TICK_MS);
    if (hello.auth?.deviceToken) this.emitter.emit("deviceToken", hello.auth.deviceToken);
    this.emitter.emit("hello", hello);
    if (hello.resume?.gap) this.emitter.emit("refetch", { reason: "gap" });
    else if (this.everConnected && !hello.resume) this.emitter.emit("refetch", { reason: "reconnect" });
    this.everConnected = true;
  }

  private onConnectError(error: GatewayError): void {
    this.connectId = undefined;
    this.verdict = { verdict: connectVerdict(error), error };
    // The server closes after a failed connect; don't wait for it.
    this.fail(error);
  }

  /** A server that sends nothing (not even `tick`) for two intervals is gone. */
  private armWatchdog(tickMs: number): void {
    this.clearTimer("watchdog");
    const limit = 2 * tickMs + 5_000;
    this.watchdogTimer = setInterval(() => {
      if (this.opts.now() - this.lastFrameAt > limit) {
        this.fail(GatewayError.disconnected("the gateway went silent"));
      }
    }, Math.min(5_000, tickMs));
  }
}
