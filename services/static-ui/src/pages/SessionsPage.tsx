/** Sessions: find, label, reset, delete, open in chat. */

import { useState } from "preact/hooks";
import { connection } from "../app/connection";
import { useAction, useDebounced, useRpc } from "../app/hooks";
import { hrefFor } from "../app/router";
import { chatTextPreview } from "./preview";
import { formatAgo } from "../components/format";
import { Button, ConfirmButton, Empty, ErrorNote, Field, Loading, Section } from "../components/ui";
import type { AgentsList, SessionEntry } from "../agents/form";

function LabelEditor({ entry, onSaved }: { entry: SessionEntry; onSaved: () => void }) {
  const [editing, setEditing] = useState(false);
  const [label, setLabel] = useState(entry.label ?? "");
  const action = useAction();
  if (!editing) {
    return (
      <Button variant="ghost" testid="session-rename" onClick={() => setEditing(true)}>
        Rename
      </Button>
    );
  }
  const save = async (e: Event) => {
    e.preventDefault();
    const ok = await action.run(() =>
      connection.request("sessions.patch", { key: entry.key, label: label.trim() ? label.trim() : null }),
    );
    if (ok !== undefined) {
      setEditing(false);
      onSaved();
    }
  };
  const id = `label-${entry.key}`;
  return (
    <form class="inline-form" onSubmit={save}>
      <label for={id} class="sr-only">
        Label for {entry.key}
      </label>
      <input id={id} value={label} onInput={(e) => setLabel(e.currentTarget.value)} data-testid="session-label-input" />
      <Button type="submit" variant="primary" testid="session-label-save" busy={action.busy}>
        Save
      </Button>
      <Button variant="ghost" testid="session-label-cancel" onClick={() => setEditing(false)}>
        Cancel
      </Button>
      <ErrorNote error={action.error} />
    </form>
  );
}

function SessionRow({ entry, onChanged }: { entry: SessionEntry; onChanged: () => void }) {
  const action = useAction();
  const call = (method: string) => void action.run(() => connection.request(method, { key: entry.key })).then(onChanged);
  return (
    <tr data-testid="session-row" data-key={entry.key}>
      <td>
        <div class="strong">{entry.label || <span class="muted">(no label)</span>}</div>
        <code class="small wrap">{entry.key}</code>
      </td>
      <td>{entry.agentId ?? "—"}</td>
      <td>{formatAgo(entry.updatedAt)}</td>
      <td class="clip">{chatTextPreview(entry.lastMessage)}</td>
      <td>
        <div class="row wrap-row">
          <a class="btn btn-default" href={hrefFor("/chat", { agent: entry.agentId, session: entry.key })} data-testid="session-open">
            Open
          </a>
          <LabelEditor entry={entry} onSaved={onChanged} />
          <ConfirmButton label="Reset" testid="session-reset" busy={action.busy} onConfirm={() => call("sessions.reset")} />
          <ConfirmButton label="Delete" testid="session-delete" busy={action.busy} onConfirm={() => call("sessions.delete")} />
        </div>
        <ErrorNote error={action.error} testid="session-error" />
      </td>
    </tr>
  );
}

export function SessionsPage() {
  const [search, setSearch] = useState("");
  const [agentId, setAgentId] = useState("");
  const [active, setActive] = useState("");
  const agents = useRpc<AgentsList>("agents.list");
  const query = useDebounced(search.trim());
  const params: Record<string, unknown> = { limit: 200 };
  if (query) params.search = query;
  if (agentId) params.agentId = agentId;
  if (active) params.activeMinutes = Number(active);
  const rpc = useRpc<{ sessions: SessionEntry[] }>("sessions.list", params);
  const sessions = rpc.data?.sessions ?? [];
  return (
    <div class="page">
      <Section title="Sessions" testid="sessions" actions={<Loading show={rpc.loading} />}>
        <div class="filters">
          <Field label="Search" id="sessions-search">
            <input id="sessions-search" type="search" value={search} onInput={(e) => setSearch(e.currentTarget.value)} data-testid="sessions-search" />
          </Field>
          <Field label="Agent" id="sessions-agent">
            <select id="sessions-agent" value={agentId} onChange={(e) => setAgentId(e.currentTarget.value)} data-testid="sessions-agent">
              <option value="">All agents</option>
              {(agents.data?.agents ?? []).map((a) => (
                <option key={a.id} value={a.id}>
                  {a.name ?? a.id}
                </option>
              ))}
            </select>
          </Field>
          <Field label="Active within" id="sessions-active">
            <select id="sessions-active" value={active} onChange={(e) => setActive(e.currentTarget.value)} data-testid="sessions-active">
              <option value="">Any time</option>
              <option value="60">1 hour</option>
              <option value="1440">1 day</option>
              <option value="10080">1 week</option>
            </select>
          </Field>
          <Button testid="sessions-refresh" onClick={rpc.reload}>
            Refresh
          </Button>
        </div>
        <ErrorNote error={rpc.error} />
        {sessions.length ? (
          <div class="table-wrap">
            <table data-testid="sessions-table">
              <thead>
                <tr>
                  <th scope="col">Session</th>
                  <th scope="col">Agent</th>
                  <th scope="col">Updated</th>
                  <th scope="col">Last message</th>
                  <th scope="col">Actions</th>
                </tr>
              </thead>
              <tbody>
                {sessions.map((s) => (
                  <SessionRow key={s.key} entry={s} onChanged={rpc.reload} />
                ))}
              </tbody>
            </table>
          </div>
        ) : (
          <Empty testid="sessions-empty">No sessions match.</Empty>
        )}
      </Section>
    </div>
  );
}
