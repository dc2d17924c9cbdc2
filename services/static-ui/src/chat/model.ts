/**
 * The chat transcript as the Chat page shows it, built from `chat.history` and updated by
 * `chat.event` / `agent.event`. Pure: each function takes the state and returns a new one.
 *
 * `chat.event` deltas carry the FULL text so far in `message.content` (plus the new chunk
 * in `delta`): a slow client may have deltas dropped, so each one replaces the text; a
 * delta with only a `delta` chunk is appended. `final` replaces the streamed text with
 * the final message when it has one; `aborted` keeps the partial text. A per-run `seq`
 * drops repeats (a replay after resume).
 *
 * History and live events overlap around a reconnect (the replay after `resume`, a history
 * reload): items carry the `runId` of the transcript, so a run's user message and answer
 * are shown once, and a run whose answer the transcript already holds is not streamed again.
 */

export type Role = "user" | "assistant" | "system" | "tool";
export type RunStatus = "streaming" | "final" | "aborted" | "error";

export interface MessageItem {
  kind: "message";
  key: string;
  role: Role;
  text: string;
  /** The run a user message started, or the run an answer concludes (not tool-call steps). */
  runId?: string;
  status?: RunStatus;
  error?: string;
  ts?: number;
}

export interface ToolItem {
  kind: "tool";
  key: string;
  name: string;
  callId: string;
  runId?: string;
  args?: unknown;
  result?: unknown;
  status: "running" | "done" | "error";
}

export type ChatItem = MessageItem | ToolItem;

export interface ChatState {
  sessionKey: string;
  items: ChatItem[];
  /** The run streaming now, if any (abort targets it). */
  activeRunId?: string;
  /** Highest per-run `seq` applied, to ignore repeats. */
  runSeqs: Record<string, number>;
}

type Rec = Record<string, unknown>;

function isRec(v: unknown): v is Rec {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function str(v: unknown): string | undefined {
  return typeof v === "string" ? v : undefined;
}

export function emptyChat(sessionKey: string): ChatState {
  return { sessionKey, items: [], runSeqs: {} };
}

function normalRole(role: unknown): Role {
  if (role === "user" || role === "assistant" || role === "system") return role;
  if (role === "tool" || role === "toolResult" || role === "function") return "tool";
  return "assistant";
}

/** The text of a message in any of the shapes providers use. */
export function messageText(message: unknown): string {
  if (typeof message === "string") return message;
  if (!isRec(message)) return "";
  const content = message.content ?? message.text;
  if (typeof content === "string") return content;
  if (Array.isArray(content)) {
    return content
      .map((part) => (typeof part === "string" ? part : isRec(part) && part.type === "text" ? str(part.text) ?? "" : ""))
      .join("");
  }
  return "";
}

interface ToolCall {
  callId: string;
  name: string;
  args: unknown;
}

function parseArgs(v: unknown): unknown {
  if (typeof v !== "string") return v;
  try {
    return JSON.parse(v);
  } catch {
    return v;
  }
}

/** Tool calls inside an assistant message: content parts or OpenAI-style `tool_calls`. */
function toolCalls(message: Rec): ToolCall[] {
  const calls: ToolCall[] = [];
  if (Array.isArray(message.content)) {
    for (const part of message.content) {
      if (!isRec(part) || !["toolCall", "tool_use", "tool_call", "toolUse"].includes(String(part.type))) continue;
      calls.push({
        callId: str(part.id) ?? str(part.toolCallId) ?? `call-${calls.length}`,
        name: str(part.name) ?? "tool",
        args: parseArgs(part.arguments ?? part.input ?? part.args),
      });
    }
  }
  const list = message.toolCalls ?? message.tool_calls;
  if (Array.isArray(list)) {
    for (const call of list) {
      if (!isRec(call)) continue;
      const fn = isRec(call.function) ? call.function : call;
      calls.push({
        callId: str(call.id) ?? `call-${calls.length}`,
        name: str(fn.name) ?? "tool",
        args: parseArgs(fn.arguments ?? fn.args),
      });
    }
  }
  return calls;
}

function messageTs(m: Rec): number | undefined {
  const ts = m.ts ?? m.timestamp ?? m.createdAt;
  if (typeof ts === "number") return ts;
  if (typeof ts === "string") {
    const parsed = Date.parse(ts);
    return Number.isNaN(parsed) ? undefined : parsed;
  }
  return undefined;
}

/** A transcript message's `stopReason` as the status the page shows. */
function stopStatus(reason: unknown): RunStatus | undefined {
  if (reason === "aborted") return "aborted";
  if (reason === "error" || reason === "timeout") return "error";
  return undefined;
}

/** `chat.history` messages as transcript items; tool results attach to their calls. */
export function fromHistory(sessionKey: string, messages: unknown[]): ChatState {
  const items: ChatItem[] = [];
  const toolsById = new Map<string, ToolItem>();
  messages.forEach((raw, index) => {
    const m: Rec = isRec(raw) ? raw : { role: "assistant", content: String(raw) };
    const role = normalRole(m.role);
    const key = str(m.id) ?? `h${index}`;
    if (role === "tool") {
      const callId = str(m.toolCallId) ?? str(m.tool_call_id);
      const existing = callId ? toolsById.get(callId) : undefined;
      const result = m.content ?? m.result;
      const failed = m.isError === true;
      if (existing) {
        existing.result = result;
        existing.status = failed ? "error" : "done";
      } else {
        items.push({
          kind: "tool",
          key,
          name: str(m.toolName) ?? str(m.name) ?? "tool",
          callId: callId ?? key,
          result,
          status: failed ? "error" : "done",
        });
      }
      return;
    }
    const text = messageText(m);
    const ts = messageTs(m);
    const calls = toolCalls(m);
    const stopped = role === "assistant" ? stopStatus(m.stopReason) : undefined;
    // A failed or aborted run's entry may have no text: it is kept, so the question shows
    // why it got no answer (as the live `error`/`aborted` event showed it).
    if (text || role !== "assistant" || stopped) {
      const item: MessageItem = { kind: "message", key, role, text };
      if (ts !== undefined) item.ts = ts;
      const runId = str(m.runId);
      // An assistant message asking for tools is a step; the one without concludes the run.
      if (runId && (role === "user" || (role === "assistant" && calls.length === 0))) item.runId = runId;
      if (stopped) item.status = stopped;
      const error = str(m.error);
      if (stopped && error) item.error = error;
      items.push(item);
    }
    for (const call of calls) {
      const tool: ToolItem = { kind: "tool", key: `${key}:${call.callId}`, ...call, status: "done" };
      toolsById.set(call.callId, tool);
      items.push(tool);
    }
  });
  return { sessionKey, items, runSeqs: {} };
}

/** Add the operator's message right away (before the server echoes anything). */
export function addUserMessage(state: ChatState, key: string, text: string, ts: number): ChatState {
  return { ...state, items: [...state.items, { kind: "message", key, role: "user", text, ts }] };
}

/**
 * Remember which run a send started, so abort can target it before its first delta; the
 * operator's message (`localKey`) is tagged with it, to be matched with the transcript's.
 */
export function startRun(state: ChatState, runId: string, localKey?: string): ChatState {
  const items = localKey
    ? state.items.map((i) => (i.key === localKey && i.kind === "message" ? { ...i, runId } : i))
    : state.items;
  return { ...state, items, activeRunId: runId };
}

/** The answer of `runId` that the transcript holds (loaded from history), if any. */
function historyAnswer(items: ChatItem[], runId: string): MessageItem | undefined {
  for (let i = items.length - 1; i >= 0; i--) {
    const item = items[i]!;
    if (item.kind === "message" && item.role === "assistant" && item.runId === runId && item.key !== `run:${runId}`) {
      return item;
    }
  }
  return undefined;
}

/**
 * A history (re)load on top of what the page shows: the transcript comes first, then the
 * items it does not hold yet — a run still streaming, a message just sent. What both have
 * (same id, the same run's user message or answer, the same tool call) is the transcript's.
 */
export function mergeHistory(current: ChatState, history: ChatState): ChatState {
  if (current.sessionKey !== history.sessionKey) return history;
  const keys = new Set<string>();
  const runs = new Set<string>();
  const calls = new Set<string>();
  for (const item of history.items) {
    keys.add(item.key);
    if (item.kind === "message" && item.runId) runs.add(`${item.role}:${item.runId}`);
    if (item.kind === "tool") calls.add(item.callId);
  }
  const newer = current.items.filter((item) => {
    if (keys.has(item.key)) return false;
    if (item.kind === "tool") return !calls.has(item.callId);
    return !(item.runId && runs.has(`${item.role}:${item.runId}`));
  });
  const merged: ChatState = { ...history, items: [...history.items, ...newer], runSeqs: current.runSeqs };
  const active = current.activeRunId;
  if (active && !runs.has(`assistant:${active}`)) merged.activeRunId = active;
  return merged;
}

function seen(state: ChatState, runId: string, seq: unknown): boolean {
  return typeof seq === "number" && seq <= (state.runSeqs[runId] ?? -Infinity);
}

function withSeq(state: ChatState, runId: string, seq: unknown): Record<string, number> {
  return typeof seq === "number" ? { ...state.runSeqs, [runId]: seq } : state.runSeqs;
}

function replaceItem(items: ChatItem[], key: string, next: ChatItem): ChatItem[] {
  return items.map((item) => (item.key === key ? next : item));
}

export function applyChatEvent(state: ChatState, payload: unknown): ChatState {
  if (!isRec(payload) || payload.sessionKey !== state.sessionKey) return state;
  const runId = str(payload.runId) ?? "run";
  if (seen(state, runId, payload.seq)) return state;
  const runSeqs = withSeq(state, runId, payload.seq);
  let existing = state.items.find((i): i is MessageItem => i.kind === "message" && i.key === `run:${runId}`);
  if (!existing) {
    const answered = historyAnswer(state.items, runId);
    // The transcript already holds this run's answer: a replayed delta is older than it.
    if (answered && payload.state === "delta") return { ...state, runSeqs };
    existing = answered;
  }
  const key = existing?.key ?? `run:${runId}`;
  const base: MessageItem = existing ?? { kind: "message", key, role: "assistant", text: "", runId, ts: Date.now() };
  const full = messageText(payload.message);
  const chunk = full || (str(payload.delta) ?? "");
  const done = (next: MessageItem, active?: string): ChatState => {
    const items = existing ? replaceItem(state.items, key, next) : [...state.items, next];
    const result: ChatState = { ...state, items, runSeqs };
    if (active) result.activeRunId = active;
    else delete result.activeRunId;
    return result;
  };
  switch (payload.state) {
    case "delta":
      return done({ ...base, text: full ? full : base.text + chunk, status: "streaming" }, runId);
    case "final":
      return done({ ...base, text: chunk || base.text, status: "final" });
    case "aborted":
      // The partial text is kept; an aborted event may repeat it whole.
      return done({ ...base, text: base.text || chunk, status: "aborted" });
    case "error": {
      const error = str(payload.errorMessage) ?? "the run failed";
      return done({ ...base, text: base.text, status: "error", error });
    }
    default:
      return state;
  }
}

/** `agent.event`: tool calls on the `tool` stream, failures on `error`. */
export function applyAgentEvent(state: ChatState, payload: unknown): ChatState {
  if (!isRec(payload) || payload.sessionKey !== state.sessionKey) return state;
  const runId = str(payload.runId) ?? "run";
  const data = isRec(payload.data) ? payload.data : {};
  if (payload.stream === "tool") {
    const callId = str(data.toolCallId) ?? str(data.callId) ?? str(data.id) ?? `${runId}:tool`;
    const key = `tool:${callId}`;
    const existing = state.items.find((i): i is ToolItem => i.kind === "tool" && i.key === key);
    const phase = str(data.phase) ?? str(data.state) ?? "";
    const finished = data.result !== undefined || ["result", "end", "done", "error"].includes(phase);
    const failed = data.isError === true || phase === "error" || data.error !== undefined;
    const next: ToolItem = {
      kind: "tool",
      key,
      callId,
      runId,
      name: str(data.name) ?? str(data.tool) ?? existing?.name ?? "tool",
      status: failed ? "error" : finished ? "done" : "running",
    };
    const args = data.args ?? data.arguments ?? existing?.args;
    const result = data.result ?? data.error ?? existing?.result;
    if (args !== undefined) next.args = parseArgs(args);
    if (result !== undefined) next.result = result;
    const items = existing ? replaceItem(state.items, key, next) : insertBeforeRun(state.items, runId, next);
    return { ...state, items };
  }
  if (payload.stream === "lifecycle") {
    const phase = str(data.phase) ?? str(data.state);
    if (phase === "start") return { ...state, activeRunId: runId };
    if ((phase === "end" || phase === "error") && state.activeRunId === runId) {
      const { activeRunId: _done, ...rest } = state;
      return rest;
    }
  }
  return state;
}

/** Tool calls show above the run's streamed answer, in the order they happened. */
function insertBeforeRun(items: ChatItem[], runId: string, tool: ToolItem): ChatItem[] {
  const answer = items.findIndex((i) => i.kind === "message" && i.key === `run:${runId}` && !i.text);
  if (answer < 0) return [...items, tool];
  return [...items.slice(0, answer), tool, ...items.slice(answer)];
}
