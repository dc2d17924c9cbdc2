/** Errors as the gateway reports them, plus the few the client raises itself. */

/** JSON-RPC error codes of docs/protocol/websocket.md, by name. */
export const ErrorCode = {
  PARSE_ERROR: -32700,
  INVALID_REQUEST: -32600,
  METHOD_NOT_FOUND: -32601,
  INVALID_PARAMS: -32602,
  INTERNAL_ERROR: -32603,
  UNAUTHENTICATED: -32001,
  FORBIDDEN: -32003,
  NOT_FOUND: -32004,
  TIMEOUT: -32008,
  CONFLICT: -32009,
  NOT_PAIRED: -32011,
  UNAVAILABLE: -32013,
  RATE_LIMITED: -32029,
  /** Client side: the socket closed (or was never open) before a reply came. */
  DISCONNECTED: -1,
  /** Client side: no reply within the request's timeout. */
  CLIENT_TIMEOUT: -2,
} as const;

export type ErrorName = keyof typeof ErrorCode;

const NAMES = new Map<number, ErrorName>(
  (Object.entries(ErrorCode) as [ErrorName, number][]).map(([name, code]) => [code, name]),
);

export interface RpcErrorObject {
  code: number;
  message: string;
  data?: Record<string, unknown>;
}

/** One error with the wire's code, the refining `data.code` and the rest of `data`. */
export class GatewayError extends Error {
  readonly code: number;
  readonly data: Record<string, unknown>;

  constructor(code: number, message: string, data: Record<string, unknown> = {}) {
    super(message);
    this.name = "GatewayError";
    this.code = code;
    this.data = data;
  }

  static fromRpc(error: RpcErrorObject): GatewayError {
    const data = error.data && typeof error.data === "object" ? error.data : {};
    return new GatewayError(error.code, error.message, data);
  }

  static disconnected(reason = "connection closed"): GatewayError {
    return new GatewayError(ErrorCode.DISCONNECTED, reason, { code: "DISCONNECTED" });
  }

  /** The protocol name of `code` (`CONFLICT`), or `ERROR_<code>` for an unknown one. */
  get codeName(): string {
    return NAMES.get(this.code) ?? `ERROR_${this.code}`;
  }

  /** `data.code` when the server refined the error (`AUTH_TOKEN_MISMATCH`). */
  get dataCode(): string | undefined {
    const value = this.data.code;
    return typeof value === "string" ? value : undefined;
  }

  is(name: ErrorName): boolean {
    return this.code === ErrorCode[name];
  }
}

/** Any thrown value as a GatewayError, so the UI has one shape to show. */
export function asGatewayError(value: unknown): GatewayError {
  if (value instanceof GatewayError) return value;
  if (value instanceof Error) return new GatewayError(ErrorCode.INTERNAL_ERROR, value.message);
  return new GatewayError(ErrorCode.INTERNAL_ERROR, String(value));
}
