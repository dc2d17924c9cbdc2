/** Chat: pick an agent and a session, send, watch the answer stream in, abort. */

import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import { pendingApprovals } from "../approvals/model";
import { approvals } from "../approvals/store";
import { connection } from "../app/connection";
import { idempotencyKey, useAction, useConnected, useGatewayEvent, useRpc } from "../app/hooks";
import { navigate, route } from "../app/router";
import { useStore } from "../app/store";
import {
  addUserMessage,
  applyAgentEvent,
  applyChatEvent,
  emptyChat,
  fromHistory,
  mergeHistory,
  startRun,
  type ChatItem,
  type ChatState,
  type ToolItem,
} from "../chat/model";
import type { AgentsList, SessionEntry } from "../agents/form";
import { ApprovalCard } from "../components/ApprovalCard";
import { formatTime } from "../components/format";
import { Badge, Button, ErrorNote, Field } from "../components/ui";
import { asGatewayError, type GatewayError } from "../gateway/errors";
import { Markdown } from "../markdown/Markdown";


/** Session keys the UI makes: `agent:<agentId>:<name>`. */
export function newSessionKey(agentId: string): string {
  return `agent:${agentId}:ui-${idempotencyKey().slice(0, 8)}`;
}

function ToolView({ item }: { item: ToolItem }) {
  return (
    <details class={`tool tool-${item.status}`} data-testid="chat-tool" data-tool={item.name} data-status={item.status}>
      <summary>
        <span class="tool-name">{item.name}</span>
        <Badge tone={item.status === "done" ? "ok" : item.status === "error" ? "bad" : "warn"}>{item.status}</Badge>
      </summary>
      {item.args !== undefined ? (
        <>
          <div class="muted small">arguments</div>
          <pre class="json">{typeof item.args === "string" ? item.args : JSON.stringify(item.args, null, 2)}</pre>
        </>
      ) : null}
      {item.result !== undefined ? (
        <>
          <div class="muted small">result</div>
          <pre class="json">{typeof item.result === "string" ? item.result : JSON.stringify(item.result, null, 2)}</pre>
        </>
      ) : null}
    </details>
  );
}

function MessageView({ item }: { item: ChatItem }) {
  if (item.kind === "tool") return <ToolView item={item} />;
  return (
    <article
      class={`msg msg-${item.role}`}
      data-testid="chat-message"
      data-role={item.role}
      data-status={item.status ?? "final"}
      data-run-id={item.runId}
    >
      <div class="msg-meta">
        <span>{item.role === "user" ? "You" : item.role}</span>
        {item.ts ? <time>{formatTime(item.ts)}</time> : null}
        {item.status === "aborted" ? <Badge tone="warn">aborted</Badge> : null}
      </div>
      <div class="msg-body" data-testid="chat-message-text">
        {item.role === "user" ? <p class="pre">{item.text}</p> : <Markdown text={item.text} />}
        {item.status === "streaming" ? <span class="cursor" aria-hidden="true" /> : null}
      </div>
      {item.error ? (
        <div class="note note-error" role="alert" data-testid="chat-run-error">
          {item.error}
        </div>
      ) : item.status === "aborted" && !item.text ? (
        // An empty body alone would read as a missing answer.
        <div class="note" data-testid="chat-run-aborted">
          Aborted before any reply.
        </div>
      ) : null}
    </article>
  );
}

export function ChatPage() {
  const r = useStore(route);
  const connected = useConnected();
  const agents = useRpc<AgentsList>("agents.list");
  const agentId = r.query.get("agent") ?? agents.data?.defaultId ?? agents.data?.agents?.[0]?.id ?? "";
  const sessions = useRpc<{ sessions: SessionEntry[] }>("sessions.list", { agentId, limit: 100 }, agentId !== "");
  const requested = r.query.get("session");
  const fallback = agentId ? `agent:${agentId}:main` : "";
  // Without a session in the URL, wait for the list and open the most recent one.
  const sessionKey =
    requested ?? (sessions.data ? (sessions.data.sessions?.[0]?.key ?? fallback) : sessions.error ? fallback : "");

  const [chat, setChat] = useState<ChatState>(() => emptyChat(sessionKey));
  const [historyError, setHistoryError] = useState<GatewayError | undefined>(undefined);
  const [loadingHistory, setLoadingHistory] = useState(false);
  const [draft, setDraft] = useState("");
  const [reloadNonce, setReloadNonce] = useState(0);
  const send = useAction();
  const abort = useAction();
  const list = useStore(approvals);
  const logRef = useRef<HTMLDivElement>(null);
  const stick = useRef(true);

  useEffect(() => connection.onRefetch(() => setReloadNonce((n) => n + 1)), []);

  // Another session: start over. A reconnect keeps what is shown (a stream in progress
  // goes on with the replayed events); the history reload below merges into it.
  useEffect(() => setChat(emptyChat(sessionKey)), [sessionKey]);

  useEffect(() => {
    if (!connected || !sessionKey) return;
    let live = true;
    setLoadingHistory(true);
    connection.request<{ messages?: unknown[] }>("chat.history", { sessionKey, limit: 200 }).then(
      (res) => {
        if (!live) return;
        setChat((current) => mergeHistory(current, fromHistory(sessionKey, res.messages ?? [])));
        setHistoryError(undefined);
        setLoadingHistory(false);
      },
      (err: unknown) => {
        if (!live) return;
        const error = asGatewayError(err);
        // A session that has no messages yet is not an error worth showing.
        setHistoryError(error.is("NOT_FOUND") ? undefined : error);
        setLoadingHistory(false);
      },
    );
    return () => {
      live = false;
    };
  }, [sessionKey, connected, reloadNonce]);

  useGatewayEvent("chat.event", (payload) => setChat((s) => applyChatEvent(s, payload)));
  useGatewayEvent("agent.event", (payload) => setChat((s) => applyAgentEvent(s, payload)));

  useLayoutEffect(() => {
    const el = logRef.current;
    if (el && stick.current) el.scrollTop = el.scrollHeight;
  }, [chat.items]);

  const streaming = chat.activeRunId !== undefined || chat.items.some((i) => i.kind === "message" && i.status === "streaming");

  const onSend = async (e?: Event) => {
    e?.preventDefault();
    const message = draft.trim();
    if (!message || !sessionKey) return;
    const key = idempotencyKey();
    setDraft("");
    stick.current = true;
    const localKey = `local:${key}`;
    setChat((s) => addUserMessage(s, localKey, message, Date.now()));
    const res = await send.run(() =>
      connection.request<{ runId: string; status: string }>("chat.send", { sessionKey, message, idempotencyKey: key }),
    );
    if (res?.runId) setChat((s) => (s.sessionKey === sessionKey ? startRun(s, res.runId, localKey) : s));
    else if (!res) setDraft((d) => d || message); // failed: give the text back
  };

  const onAbort = () =>
    void abort.run(async () => {
      const params: Record<string, string> = { sessionKey };
      if (chat.activeRunId) params.runId = chat.activeRunId;
      await connection.request("chat.abort", params);
    });

  const sessionOptions = [...(sessions.data?.sessions ?? [])];
  if (sessionKey && !sessionOptions.some((s) => s.key === sessionKey)) sessionOptions.unshift({ key: sessionKey });
  const inline = pendingApprovals(list, Date.now()).filter((a) => a.request.sessionKey === sessionKey);

  return (
    <div class="page page-chat">
      <div class="chat-pickers">
        <Field label="Agent" id="chat-agent">
          <select
            id="chat-agent"
            data-testid="chat-agent"
            value={agentId}
            onChange={(e) => navigate("/chat", { agent: e.currentTarget.value })}
          >
            {(agents.data?.agents ?? []).map((a) => (
              <option key={a.id} value={a.id}>
                {a.name ? `${a.name} (${a.id})` : a.id}
              </option>
            ))}
            {!agents.data && agentId ? <option value={agentId}>{agentId}</option> : null}
          </select>
        </Field>
        <Field label="Session" id="chat-session">
          <select
            id="chat-session"
            data-testid="chat-session"
            value={sessionKey}
            onChange={(e) => navigate("/chat", { agent: agentId, session: e.currentTarget.value })}
          >
            {sessionOptions.map((s) => (
              <option key={s.key} value={s.key}>
                {s.label ? `${s.label} — ${s.key}` : s.key}
              </option>
            ))}
          </select>
        </Field>
        <Button
          testid="chat-new-session"
          disabled={!agentId}
          onClick={() => navigate("/chat", { agent: agentId, session: newSessionKey(agentId) })}
        >
          New session
        </Button>
      </div>
      <ErrorNote error={agents.error ?? sessions.error ?? historyError} testid="chat-load-error" />

      <div
        class="chat-log"
        ref={logRef}
        data-testid="chat-log"
        data-session={sessionKey}
        role="log"
        aria-live="polite"
        aria-busy={loadingHistory ? "true" : "false"}
        tabIndex={0}
        onScroll={(e) => {
          const el = e.currentTarget;
          stick.current = el.scrollHeight - el.scrollTop - el.clientHeight < 48;
        }}
      >
        {chat.items.length === 0 && !loadingHistory ? (
          <p class="empty" data-testid="chat-empty">
            No messages yet. Say hello.
          </p>
        ) : null}
        {chat.items.map((item) => (
          <MessageView key={item.key} item={item} />
        ))}
        {inline.map((entry) => (
          <ApprovalCard key={entry.request.id} entry={entry} compact />
        ))}
      </div>

      <form class="composer" onSubmit={onSend} data-testid="chat-form">
        <label for="chat-input" class="sr-only">
          Message
        </label>
        <textarea
          id="chat-input"
          data-testid="chat-input"
          rows={2}
          placeholder={sessionKey ? "Message the agent… (Enter to send, Shift+Enter for a new line)" : "Pick an agent first"}
          value={draft}
          disabled={!sessionKey}
          onInput={(e) => setDraft(e.currentTarget.value)}
          onKeyDown={(e) => {
            if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
              e.preventDefault();
              void onSend();
            }
          }}
        />
        <div class="composer-actions">
          {streaming ? (
            <Button variant="danger" testid="chat-abort" busy={abort.busy} onClick={onAbort}>
              Stop
            </Button>
          ) : null}
          <Button type="submit" variant="primary" testid="chat-send" busy={send.busy} disabled={!draft.trim() || !sessionKey || !connected}>
            Send
          </Button>
        </div>
      </form>
      <ErrorNote error={send.error ?? abort.error} testid="chat-error" />
    </div>
  );
}
