/** Logs: `logs.tail` polled with its cursor; filter by service and level; pause. */

import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import { connection } from "../app/connection";
import { useConnected, useDebounced } from "../app/hooks";
import { formatTime } from "../components/format";
import { Button, Empty, ErrorNote, Field, Section } from "../components/ui";
import { asGatewayError, type GatewayError } from "../gateway/errors";
import { appendLines, type LogLine } from "../logs/model";

const POLL_MS = 2000;
const MAX_LINES = 2000;
const LEVELS = ["", "debug", "info", "warning", "error"];

interface TailResult {
  cursor?: unknown;
  lines?: unknown[];
  reset?: boolean;
}

export function LogsPage() {
  const connected = useConnected();
  const [serviceInput, setServiceInput] = useState("");
  const [level, setLevel] = useState("");
  const [paused, setPaused] = useState(false);
  const [follow, setFollow] = useState(true);
  const [lines, setLines] = useState<LogLine[]>([]);
  const [error, setError] = useState<GatewayError | undefined>(undefined);
  const [resets, setResets] = useState(0);
  const service = useDebounced(serviceInput.trim(), 400);
  const viewRef = useRef<HTMLDivElement>(null);
  const counter = useRef(0);
  // The cursor survives reconnects and pauses; a new filter starts over.
  const cursorRef = useRef<{ filter: string; cursor: unknown }>({ filter: "", cursor: undefined });

  // One polling loop per filter set: a new filter starts from a fresh cursor.
  useEffect(() => {
    if (!connected || paused) return;
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const filter = JSON.stringify([service, level]);
    if (cursorRef.current.filter !== filter) {
      cursorRef.current = { filter, cursor: undefined };
      setLines([]);
    }
    const poll = async () => {
      const params: Record<string, unknown> = { limit: 500 };
      const cursor = cursorRef.current.cursor;
      if (cursor !== undefined) params.cursor = cursor;
      if (service) params.service = service;
      if (level) params.level = level;
      try {
        const res = await connection.request<TailResult>("logs.tail", params);
        if (stopped) return;
        if (res.reset) {
          // The stream dropped what the cursor pointed at: start over from what it holds.
          setLines([]);
          setResets((n) => n + 1);
        }
        const page = res.lines ?? [];
        const start = counter.current;
        counter.current += page.length;
        if (page.length) setLines((current) => appendLines(res.reset ? [] : current, page, start, MAX_LINES));
        if (res.cursor !== undefined) cursorRef.current = { filter, cursor: res.cursor };
        setError(undefined);
      } catch (err) {
        if (stopped) return;
        setError(asGatewayError(err));
      }
      if (!stopped) timer = setTimeout(() => void poll(), POLL_MS);
    };
    void poll();
    return () => {
      stopped = true;
      if (timer) clearTimeout(timer);
    };
  }, [connected, paused, service, level]);

  useLayoutEffect(() => {
    const el = viewRef.current;
    if (el && follow) el.scrollTop = el.scrollHeight;
  }, [lines, follow]);

  return (
    <div class="page page-logs">
      <Section title="Logs" testid="logs">
        <div class="filters">
          <Field label="Service" id="logs-service">
            <input id="logs-service" value={serviceInput} placeholder="all" onInput={(e) => setServiceInput(e.currentTarget.value)} data-testid="logs-service" list="log-services" spellcheck={false} />
          </Field>
          <datalist id="log-services">
            {["ws-gateway", "http-api", "auth", "ratelimit", "runtime"].map((s) => (
              <option key={s} value={s} />
            ))}
          </datalist>
          <Field label="Level" id="logs-level">
            <select id="logs-level" value={level} onChange={(e) => setLevel(e.currentTarget.value)} data-testid="logs-level">
              {LEVELS.map((l) => (
                <option key={l} value={l}>
                  {l || "all"}
                </option>
              ))}
            </select>
          </Field>
          <div class="row">
            <Button testid="logs-pause" aria-pressed={paused ? "true" : "false"} onClick={() => setPaused(!paused)}>
              {paused ? "Resume" : "Pause"}
            </Button>
            <Button variant="ghost" testid="logs-clear" onClick={() => setLines([])}>
              Clear
            </Button>
            <label class="check">
              <input type="checkbox" checked={follow} onChange={(e) => setFollow(e.currentTarget.checked)} data-testid="logs-follow" />
              Follow
            </label>
          </div>
        </div>
        <ErrorNote error={error} testid="logs-error" />
        {resets ? <p class="muted small">The log stream was trimmed {resets} time(s); some lines were skipped.</p> : null}
        <div class="logview" ref={viewRef} data-testid="logs-view" role="log" aria-live="off" tabIndex={0}>
          {lines.length ? (
            lines.map((l) => (
              <div key={l.key} class={`logline lvl-${l.level || "none"}`} data-testid="log-line" data-level={l.level} data-service={l.service}>
                <span class="log-ts">{l.ts ? formatTime(l.ts) : ""}</span>
                <span class="log-lvl">{l.level}</span>
                <span class="log-svc">{l.service}</span>
                <span class="log-msg">
                  {l.message}
                  {l.extra ? <span class="log-extra"> {JSON.stringify(l.extra)}</span> : null}
                </span>
              </div>
            ))
          ) : (
            <Empty testid="logs-empty">{paused ? "Paused." : connected ? "Waiting for log lines…" : "Not connected."}</Empty>
          )}
        </div>
      </Section>
    </div>
  );
}
