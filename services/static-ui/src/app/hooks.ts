/** Hooks that bind components to the gateway: RPC calls, events and button actions. */

import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { asGatewayError, type GatewayError } from "../gateway/errors";
import type { EventListener } from "../gateway/client";
import { connection } from "./connection";
import { useStore } from "./store";

export function useConnectionState() {
  return useStore(connection.state);
}

export function useConnected(): boolean {
  return useConnectionState().status === "connected";
}

export interface RpcState<T> {
  data: T | undefined;
  error: GatewayError | undefined;
  loading: boolean;
  reload: () => void;
  setData: (value: T | undefined) => void;
}

/**
 * Call `method` when connected, again when `params` change, after a reconnect that may
 * have missed events, and on `reload()`. A stale reply never overwrites a newer one.
 */
export function useRpc<T>(method: string, params: unknown = {}, enabled = true): RpcState<T> {
  const connected = useConnected();
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<GatewayError | undefined>(undefined);
  const [loading, setLoading] = useState(false);
  const [nonce, setNonce] = useState(0);
  const counter = useRef(0);
  const key = JSON.stringify(params ?? {});

  const reload = useCallback(() => setNonce((n) => n + 1), []);

  useEffect(() => connection.onRefetch(reload), [reload]);

  useEffect(() => {
    if (!connected || !enabled) return;
    const mine = ++counter.current;
    setLoading(true);
    connection.request<T>(method, JSON.parse(key) as unknown).then(
      (result) => {
        if (mine !== counter.current) return;
        setData(result);
        setError(undefined);
        setLoading(false);
      },
      (err: unknown) => {
        if (mine !== counter.current) return;
        setError(asGatewayError(err));
        setLoading(false);
      },
    );
  }, [connected, enabled, method, key, nonce]);

  return { data, error, loading, reload, setData };
}

/** Listen to a gateway event for the component's lifetime; the latest `listener` is used. */
export function useGatewayEvent(name: string, listener: EventListener): void {
  const ref = useRef(listener);
  ref.current = listener;
  useEffect(() => connection.onEvent(name, (payload, meta) => ref.current(payload, meta)), [name]);
}

/** `reload` once `ms` after the event `name`, however many more come meanwhile: for reads
 * that the event makes stale but does not carry the new state of (or carries it racing a
 * reply already on its way). */
export function useReloadOnEvent(name: string, reload: () => void, ms: number): void {
  const timer = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);
  const latest = useRef(reload);
  latest.current = reload;
  useGatewayEvent(name, () => {
    timer.current ??= setTimeout(() => {
      timer.current = undefined;
      latest.current();
    }, ms);
  });
  useEffect(() => () => clearTimeout(timer.current), []);
}

export interface Action {
  busy: boolean;
  error: GatewayError | undefined;
  run: <T>(fn: () => Promise<T>) => Promise<T | undefined>;
  clear: () => void;
}

/** A button's pending state and last error; `run` never throws. */
export function useAction(): Action {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<GatewayError | undefined>(undefined);
  const mounted = useRef(true);
  useEffect(
    () => () => {
      mounted.current = false;
    },
    [],
  );
  const run = useCallback(async <T,>(fn: () => Promise<T>): Promise<T | undefined> => {
    setBusy(true);
    setError(undefined);
    try {
      return await fn();
    } catch (err) {
      if (mounted.current) setError(asGatewayError(err));
      return undefined;
    } finally {
      if (mounted.current) setBusy(false);
    }
  }, []);
  const clear = useCallback(() => setError(undefined), []);
  return { busy, error, run, clear };
}

/**
 * A per-action idempotency key (the gateway dedupes repeats for 5 minutes). A v4 UUID from
 * getRandomValues: `crypto.randomUUID` exists only in secure contexts, and the UI may be
 * served over plain http on a LAN.
 */
export function idempotencyKey(): string {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** `value`, but only once it stopped changing for `ms` (search boxes → fewer requests). */
export function useDebounced<T>(value: T, ms = 300): T {
  const [settled, setSettled] = useState(value);
  useEffect(() => {
    const timer = setTimeout(() => setSettled(value), ms);
    return () => clearTimeout(timer);
  }, [value, ms]);
  return settled;
}
