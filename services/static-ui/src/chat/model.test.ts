import { describe, expect, it } from "vitest";
import {
  addUserMessage,
  applyAgentEvent,
  applyChatEvent,
  emptyChat,
  fromHistory,
  mergeHistory,
  messageText,
  startRun,
  type ChatState,
  type MessageItem,
} from "./model";

const S = "agent:main:main";
// A delta as the runtime sends it: the full text so far, plus the new chunk.
const delta = (seq: number, soFar: string, chunk: string, runId = "run-1") => ({
  runId,
  sessionKey: S,
  seq,
  state: "delta",
  message: { role: "assistant", content: soFar },
  delta: chunk,
});

function texts(state: ChatState): string[] {
  return state.items.map((i) => (i.kind === "message" ? `${i.role}:${i.text}:${i.status ?? ""}` : `tool:${i.name}:${i.status}`));
}

describe("messageText", () => {
  it("reads strings, content strings and text parts", () => {
    expect(messageText("hi")).toBe("hi");
    expect(messageText({ role: "assistant", content: "hello" })).toBe("hello");
    expect(messageText({ content: [{ type: "text", text: "a" }, { type: "image" }, { type: "text", text: "b" }] })).toBe("ab");
    expect(messageText(null)).toBe("");
  });
});

describe("streaming", () => {
  it("streams deltas token by token, then the final message replaces them", () => {
    let s = startRun(addUserMessage(emptyChat(S), "u1", "hi", 1), "run-1");
    expect(s.activeRunId).toBe("run-1");
    s = applyChatEvent(s, delta(1, "Hel", "Hel"));
    s = applyChatEvent(s, delta(2, "Hello", "lo"));
    expect(texts(s)).toEqual(["user:hi:", "assistant:Hello:streaming"]);
    expect(s.activeRunId).toBe("run-1");
    s = applyChatEvent(s, { runId: "run-1", sessionKey: S, seq: 3, state: "final", message: { role: "assistant", content: "Hello!" } });
    expect(texts(s)).toEqual(["user:hi:", "assistant:Hello!:final"]);
    expect(s.activeRunId).toBeUndefined();
  });

  it("ignores repeated seqs (replay after resume) and other sessions", () => {
    let s = emptyChat(S);
    s = applyChatEvent(s, delta(1, "a", "a"));
    s = applyChatEvent(s, delta(1, "a", "a"));
    s = applyChatEvent(s, { ...delta(2, "zzz", "zzz"), sessionKey: "other" });
    s = applyChatEvent(s, delta(2, "ab", "b"));
    expect((s.items[0] as MessageItem).text).toBe("ab");
  });

  it("recovers the whole text when deltas were dropped for a slow client", () => {
    let s = applyChatEvent(emptyChat(S), delta(1, "one", "one"));
    s = applyChatEvent(s, delta(5, "one two three four", " four"));
    expect((s.items[0] as MessageItem).text).toBe("one two three four");
  });

  it("appends bare chunks when a delta carries no full text", () => {
    let s = applyChatEvent(emptyChat(S), { runId: "r", sessionKey: S, seq: 1, state: "delta", delta: "a" });
    s = applyChatEvent(s, { runId: "r", sessionKey: S, seq: 2, state: "delta", delta: "b" });
    expect((s.items[0] as MessageItem).text).toBe("ab");
  });

  it("keeps the partial text on abort and shows errors", () => {
    let s = applyChatEvent(emptyChat(S), delta(1, "partial", "partial"));
    s = applyChatEvent(s, { runId: "run-1", sessionKey: S, seq: 2, state: "aborted" });
    expect(texts(s)).toEqual(["assistant:partial:aborted"]);
    s = applyChatEvent(s, { runId: "run-2", sessionKey: S, seq: 1, state: "error", errorMessage: "provider down" });
    expect(s.items[1]).toMatchObject({ status: "error", error: "provider down" });
  });

  it("keeps streamed text when the final carries no message", () => {
    let s = applyChatEvent(emptyChat(S), delta(1, "x", "x"));
    s = applyChatEvent(s, { runId: "run-1", sessionKey: S, seq: 2, state: "final" });
    expect(texts(s)).toEqual(["assistant:x:final"]);
  });
});

describe("tool calls", () => {
  it("shows a tool call from agent.event and completes it", () => {
    let s = startRun(emptyChat(S), "run-1");
    s = applyChatEvent(s, { runId: "run-1", sessionKey: S, seq: 1, state: "delta", message: "" });
    s = applyAgentEvent(s, { runId: "run-1", sessionKey: S, seq: 2, stream: "tool", data: { phase: "start", name: "exec", toolCallId: "t1", args: '{"cmd":"ls"}' } });
    expect(texts(s)).toEqual(["tool:exec:running", "assistant::streaming"]);
    expect(s.items[0]).toMatchObject({ args: { cmd: "ls" } });
    s = applyAgentEvent(s, { runId: "run-1", sessionKey: S, seq: 3, stream: "tool", data: { phase: "result", toolCallId: "t1", result: "file.txt" } });
    expect(s.items[0]).toMatchObject({ name: "exec", status: "done", result: "file.txt", args: { cmd: "ls" } });
  });

  it("tracks the active run from lifecycle events", () => {
    let s = applyAgentEvent(emptyChat(S), { runId: "r9", sessionKey: S, stream: "lifecycle", data: { phase: "start" } });
    expect(s.activeRunId).toBe("r9");
    s = applyAgentEvent(s, { runId: "r9", sessionKey: S, stream: "lifecycle", data: { phase: "end" } });
    expect(s.activeRunId).toBeUndefined();
  });
});

describe("fromHistory", () => {
  it("reads messages, tool calls and their results", () => {
    const s = fromHistory(S, [
      { role: "user", content: "list files", ts: 5 },
      { role: "assistant", content: [{ type: "text", text: "Running" }, { type: "toolCall", id: "c1", name: "exec", arguments: { cmd: "ls" } }] },
      { role: "toolResult", toolCallId: "c1", content: "a.txt" },
      { role: "assistant", tool_calls: [{ id: "c2", function: { name: "read", arguments: '{"path":"a.txt"}' } }] },
      { role: "tool", tool_call_id: "c2", content: "data", isError: true },
      { role: "assistant", content: "Done" },
    ]);
    expect(texts(s)).toEqual(["user:list files:", "assistant:Running:", "tool:exec:done", "tool:read:error", "assistant:Done:"]);
    expect(s.items[2]).toMatchObject({ args: { cmd: "ls" }, result: "a.txt" });
    expect(s.items[3]).toMatchObject({ args: { path: "a.txt" }, result: "data" });
    expect(s.items[0]).toMatchObject({ ts: 5 });
  });
});

describe("reconnects: history and replayed events overlap", () => {
  const history = (...messages: unknown[]) => fromHistory(S, messages);
  const user = { id: "m1", role: "user", content: "hi", runId: "run-1" };
  const answer = { id: "m2", role: "assistant", content: "Hello!", runId: "run-1" };

  it("keeps a stream in progress and drops the local copy of a message the transcript has", () => {
    let s = startRun(addUserMessage(emptyChat(S), "local:k", "hi", 1), "run-1", "local:k");
    s = applyChatEvent(s, delta(1, "Hel", "Hel"));
    s = mergeHistory(s, history(user));
    expect(texts(s)).toEqual(["user:hi:", "assistant:Hel:streaming"]);
    expect(s.items[0]!.key).toBe("m1");
    expect(s.activeRunId).toBe("run-1");
    s = applyChatEvent(s, delta(1, "Hel", "Hel")); // replayed: already seen
    s = applyChatEvent(s, delta(2, "Hello", "lo"));
    s = applyChatEvent(s, { runId: "run-1", sessionKey: S, seq: 3, state: "final", message: { role: "assistant", content: "Hello!" } });
    expect(texts(s)).toEqual(["user:hi:", "assistant:Hello!:final"]);
  });

  it("shows a run that ended while disconnected once, from the transcript", () => {
    let s = startRun(addUserMessage(emptyChat(S), "local:k", "hi", 1), "run-1", "local:k");
    s = applyChatEvent(s, delta(1, "Hel", "Hel"));
    s = applyChatEvent(s, { runId: "run-1", sessionKey: S, seq: 3, state: "final", message: { id: "m2", role: "assistant", content: "Hello!" } });
    s = mergeHistory(s, history(user, answer));
    expect(texts(s)).toEqual(["user:hi:", "assistant:Hello!:"]);
    expect(s.activeRunId).toBeUndefined();
  });

  it("does not stream again an answer the transcript already holds", () => {
    let s = mergeHistory(emptyChat(S), history(user, answer));
    s = applyChatEvent(s, delta(2, "Hello", "lo"));
    expect(texts(s)).toEqual(["user:hi:", "assistant:Hello!:"]);
    expect(s.activeRunId).toBeUndefined();
    s = applyChatEvent(s, { runId: "run-1", sessionKey: S, seq: 3, state: "final", message: { id: "m2", role: "assistant", content: "Hello!" } });
    expect(texts(s)).toEqual(["user:hi:", "assistant:Hello!:final"]);
  });

  it("keeps the answer of a run whose transcript so far is only a tool-call step", () => {
    let s = applyChatEvent(emptyChat(S), delta(4, "Done", "Done"));
    s = mergeHistory(
      s,
      history(user, { id: "m2", role: "assistant", content: "Checking", runId: "run-1", toolCalls: [{ id: "c1", name: "exec", args: {} }] }),
    );
    expect(texts(s)).toEqual(["user:hi:", "assistant:Checking:", "tool:exec:done", "assistant:Done:streaming"]);
  });

  it("reads a stopped run's status from the transcript", () => {
    const s = history(user, { id: "m2", role: "assistant", content: "part", runId: "run-1", stopReason: "aborted" });
    expect(texts(s)).toEqual(["user:hi:", "assistant:part:aborted"]);
  });

  const failed = { id: "m2", role: "assistant", content: "", runId: "run-1", stopReason: "error", error: "upstream said no" };
  const failedEvent = { runId: "run-1", sessionKey: S, seq: 1, state: "error", errorMessage: "upstream said no" };

  it("shows a failed or aborted run's empty entry with its reason", () => {
    const s = history(user, failed, { id: "m4", role: "user", content: "again", runId: "run-2" }, {
      id: "m5",
      role: "assistant",
      content: "",
      runId: "run-2",
      stopReason: "aborted",
    });
    expect(texts(s)).toEqual(["user:hi:", "assistant::error", "user:again:", "assistant::aborted"]);
    expect(s.items[1]).toMatchObject({ runId: "run-1", error: "upstream said no" });
    expect((s.items[3] as MessageItem).error).toBeUndefined();
    // An ordinary empty assistant message stays hidden.
    expect(texts(history({ id: "m6", role: "assistant", content: "" }))).toEqual([]);
  });

  it("shows a failure once whether the live event or the history reload comes first", () => {
    const live = applyChatEvent(startRun(addUserMessage(emptyChat(S), "local:k", "hi", 1), "run-1", "local:k"), failedEvent);
    expect(texts(live)).toEqual(["user:hi:", "assistant::error"]);
    const reloaded = mergeHistory(live, history(user, failed));
    expect(texts(reloaded)).toEqual(["user:hi:", "assistant::error"]);
    expect(reloaded.items[1]).toMatchObject({ key: "m2", error: "upstream said no" });
    const late = applyChatEvent(mergeHistory(emptyChat(S), history(user, failed)), failedEvent);
    expect(texts(late)).toEqual(["user:hi:", "assistant::error"]);
    expect(late.items[1]).toMatchObject({ key: "m2", error: "upstream said no" });
  });
});
