/** Shapes of the handshake (docs/protocol/websocket.md), as the client sends and reads them. */

export const PROTOCOL_VERSION = 1;

export interface ClientInfo {
  id: string;
  version: string;
  platform: string;
  mode: string;
  displayName?: string;
  instanceId?: string;
}

export type AuthCredential = { token: string } | { password: string } | { deviceToken: string };

export interface Hello {
  protocol: number;
  server: { version: string; connId: string; instance: string };
  features: { methods: string[]; events: string[] };
  snapshot: { presence: unknown; health: unknown; uptimeMs: number };
  auth: { method: string; role: string; scopes: string[]; deviceToken?: string };
  policy: { maxPayload: number; maxBufferedBytes: number; tickIntervalMs: number };
  resume?: { replayed: number; gap: boolean };
}

export interface EventMeta {
  name: string;
  seq?: number;
  ts?: number;
}

export type ConnectionStatus =
  | "idle"
  | "connecting"
  | "handshaking"
  | "connected"
  | "waiting"
  | "pairing"
  | "failed";

export interface ConnectionState {
  status: ConnectionStatus;
  /** Consecutive failed attempts since the last `hello`. */
  attempt: number;
  /** Why the last attempt or connection ended. */
  error?: import("./errors").GatewayError;
  /** When `waiting` or `pairing`: the time of the next attempt (ms since epoch). */
  nextRetryAt?: number;
  /** When `pairing`: the pairing request to approve. */
  pairingRequestId?: string;
  hello?: Hello;
}
