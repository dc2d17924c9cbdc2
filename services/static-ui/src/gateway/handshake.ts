/** The `connect` request and how its failures steer reconnection. Pure. */

import { ErrorCode, type GatewayError } from "./errors";
import type { DeviceProof } from "./device";
import { PROTOCOL_VERSION, type AuthCredential, type ClientInfo } from "./types";

export interface ConnectInput {
  client: ClientInfo;
  role: string;
  scopes: readonly string[];
  auth?: AuthCredential;
  device?: DeviceProof;
  lastSeq?: number;
}

export function connectParams(input: ConnectInput): Record<string, unknown> {
  const params: Record<string, unknown> = {
    minProtocol: PROTOCOL_VERSION,
    maxProtocol: PROTOCOL_VERSION,
    client: input.client,
    role: input.role,
    scopes: [...input.scopes],
  };
  if (input.auth) params.auth = input.auth;
  if (input.device) params.device = input.device;
  if (input.lastSeq !== undefined) params.resume = { lastSeq: input.lastSeq };
  return params;
}

/** The challenge's nonce, or undefined when the frame doesn't carry one. */
export function challengeNonce(payload: unknown): string | undefined {
  if (typeof payload !== "object" || payload === null) return undefined;
  const nonce = (payload as Record<string, unknown>).nonce;
  return typeof nonce === "string" && nonce.length > 0 ? nonce : undefined;
}

export type ConnectVerdict =
  /** Try again after the usual backoff (server busy, restarting, unreachable). */
  | { kind: "retry"; minDelayMs?: number }
  /** The device awaits approval: poll until an operator approves it. */
  | { kind: "pairing"; requestId?: string }
  /** Retrying cannot help: the operator must change something (credential, version). */
  | { kind: "fatal" };

/** What a failed `connect` means for the next attempt. */
export function connectVerdict(error: GatewayError): ConnectVerdict {
  switch (error.code) {
    case ErrorCode.NOT_PAIRED: {
      const id = error.data.requestId;
      return typeof id === "string" ? { kind: "pairing", requestId: id } : { kind: "pairing" };
    }
    case ErrorCode.RATE_LIMITED: {
      const after = error.data.retryAfterMs;
      return typeof after === "number" ? { kind: "retry", minDelayMs: after } : { kind: "retry" };
    }
    case ErrorCode.UNAVAILABLE:
    case ErrorCode.INTERNAL_ERROR:
    case ErrorCode.TIMEOUT:
    case ErrorCode.DISCONNECTED:
    case ErrorCode.CLIENT_TIMEOUT:
      return { kind: "retry" };
    default:
      // UNAUTHENTICATED (incl. AUTH_RATE_LIMITED lockouts), FORBIDDEN, INVALID_*,
      // PROTOCOL_MISMATCH: hammering the gateway would only extend a lockout.
      return { kind: "fatal" };
  }
}
