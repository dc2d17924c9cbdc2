/** Agents: list, create, edit, delete. */

import { useState } from "preact/hooks";
import { connection } from "../app/connection";
import { useAction, useRpc } from "../app/hooks";
import { hrefFor } from "../app/router";
import { Badge, Button, ConfirmButton, Empty, ErrorNote, Field, Loading, Section } from "../components/ui";
import { AgentFilesEditor } from "../agents/FilesEditor";
import { agentFields, changedFields, draftOf, EMPTY_DRAFT as EMPTY, type Agent, type AgentDraft, type AgentsList } from "../agents/form";

function AgentForm(props: {
  initial: AgentDraft;
  mode: "create" | "edit";
  onDone: () => void;
  onCancel?: () => void;
}) {
  const [d, setD] = useState(props.initial);
  const action = useAction();
  const set = (key: keyof AgentDraft) => (e: { currentTarget: { value: string } }) => setD({ ...d, [key]: e.currentTarget.value });
  const prefix = props.mode === "create" ? "agent-new" : `agent-edit`;
  const submit = async (e: Event) => {
    e.preventDefault();
    const result = await action.run(() =>
      props.mode === "create"
        ? connection.request("agents.create", { ...(d.id.trim() ? { id: d.id.trim() } : {}), ...agentFields(d, false) })
        : connection.request("agents.update", { agentId: d.id, ...changedFields(props.initial, d) }),
    );
    if (result !== undefined) {
      if (props.mode === "create") setD(EMPTY);
      props.onDone();
    }
  };
  return (
    <form class="form form-grid" onSubmit={submit} data-testid={`${prefix}-form`}>
      {props.mode === "create" ? (
        <Field label="Id (optional)" id={`${prefix}-id`} hint="Letters, digits, dashes; derived from the name when empty.">
          <input id={`${prefix}-id`} value={d.id} onInput={set("id")} data-testid={`${prefix}-id`} aria-describedby={`${prefix}-id-hint`} spellcheck={false} />
        </Field>
      ) : null}
      <Field label="Name" id={`${prefix}-name`}>
        <input id={`${prefix}-name`} value={d.name} onInput={set("name")} required data-testid={`${prefix}-name`} />
      </Field>
      <Field label="Model" id={`${prefix}-model`} hint="Empty: the gateway default.">
        <input id={`${prefix}-model`} value={d.model} onInput={set("model")} list="model-options" data-testid={`${prefix}-model`} aria-describedby={`${prefix}-model-hint`} spellcheck={false} />
      </Field>
      <Field label="Tools" id={`${prefix}-tools`} hint="Comma-separated tool names (patterns); empty: every tool the policy allows.">
        <input id={`${prefix}-tools`} value={d.tools} onInput={set("tools")} data-testid={`${prefix}-tools`} aria-describedby={`${prefix}-tools-hint`} spellcheck={false} />
      </Field>
      <Field label="Instructions" id={`${prefix}-instructions`} class="span-2">
        <textarea id={`${prefix}-instructions`} rows={4} value={d.instructions} onInput={set("instructions")} data-testid={`${prefix}-instructions`} />
      </Field>
      <div class="row span-2">
        <Button type="submit" variant="primary" testid={`${prefix}-submit`} busy={action.busy}>
          {props.mode === "create" ? "Create agent" : "Save"}
        </Button>
        {props.onCancel ? (
          <Button variant="ghost" testid={`${prefix}-cancel`} onClick={props.onCancel}>
            Cancel
          </Button>
        ) : null}
      </div>
      <div class="span-2">
        <ErrorNote error={action.error} testid={`${prefix}-error`} />
      </div>
    </form>
  );
}

function AgentRow({ agent, isDefault, onChanged }: { agent: Agent; isDefault: boolean; onChanged: () => void }) {
  const [editing, setEditing] = useState(false);
  const [files, setFiles] = useState(false);
  const del = useAction();
  return (
    <li class="agent" data-testid="agent-row" data-id={agent.id}>
      <div class="agent-head">
        <div>
          <div class="strong">
            {agent.name ?? agent.id} {isDefault ? <Badge tone="accent">default</Badge> : null}
          </div>
          <div class="muted small">
            <code>{agent.id}</code> · {agent.model ?? "default model"}
          </div>
        </div>
        <div class="row wrap-row">
          <a class="btn btn-default" href={hrefFor("/chat", { agent: agent.id })} data-testid="agent-chat">
            Chat
          </a>
          <Button variant="ghost" testid="agent-edit" aria-expanded={editing ? "true" : "false"} onClick={() => setEditing(!editing)}>
            Edit
          </Button>
          <Button variant="ghost" testid="agent-files-toggle" aria-expanded={files ? "true" : "false"} onClick={() => setFiles(!files)}>
            Files
          </Button>
          <ConfirmButton
            label="Delete"
            testid="agent-delete"
            busy={del.busy}
            disabled={isDefault}
            onConfirm={() => void del.run(() => connection.request("agents.delete", { agentId: agent.id })).then(onChanged)}
          />
        </div>
      </div>
      <ErrorNote error={del.error} testid="agent-delete-error" />
      {editing ? (
        <AgentForm
          mode="edit"
          initial={draftOf(agent)}
          onDone={() => {
            setEditing(false);
            onChanged();
          }}
          onCancel={() => setEditing(false)}
        />
      ) : null}
      {files ? <AgentFilesEditor agentId={agent.id} /> : null}
    </li>
  );
}

export function AgentsPage() {
  const rpc = useRpc<AgentsList>("agents.list");
  const models = useRpc<{ models: { id: string; provider?: string }[] }>("models.list");
  const modelIds = (models.data?.models ?? []).map((m) => m.id);
  const agents = rpc.data?.agents ?? [];
  return (
    <div class="page">
      <datalist id="model-options">
        {modelIds.map((m) => (
          <option key={m} value={m} />
        ))}
      </datalist>
      <Section title="Agents" testid="agents" actions={<Loading show={rpc.loading} />}>
        <ErrorNote error={rpc.error} />
        {agents.length ? (
          <ul class="agent-list" data-testid="agents-list">
            {agents.map((a) => (
              <AgentRow key={a.id} agent={a} isDefault={a.id === rpc.data?.defaultId} onChanged={rpc.reload} />
            ))}
          </ul>
        ) : (
          <Empty testid="agents-empty">No agents yet.</Empty>
        )}
      </Section>
      <Section title="New agent" testid="agent-create">
        <AgentForm mode="create" initial={EMPTY} onDone={rpc.reload} />
      </Section>
    </div>
  );
}
