/** An agent's workspace files (AGENTS.md, SOUL.md, …): pick one, edit it, save it. */

import { useEffect, useRef, useState } from "preact/hooks";
import { connection } from "../app/connection";
import { useAction, useRpc } from "../app/hooks";
import { Button, ErrorNote, Field, Notice } from "../components/ui";
import { conflictRevision, draftProblem, FILE_NAMES, fileStatus, isDirty, saveParams, type AgentFile } from "./files";

export function AgentFilesEditor({ agentId }: { agentId: string }) {
  const list = useRpc<{ files: AgentFile[] }>("agents.files.list", { agentId });
  const [name, setName] = useState<string>(FILE_NAMES[0]);
  const [loaded, setLoaded] = useState<AgentFile | undefined>(undefined);
  const [draft, setDraft] = useState("");
  const load = useAction();
  const save = useAction();
  // Only the file asked for last may fill the editor: an answer for a tab clicked earlier
  // arriving late would otherwise replace the text and make Save write the wrong file.
  const lastAsked = useRef(0);

  const open = async (wanted: string) => {
    const ticket = ++lastAsked.current;
    setName(wanted);
    setLoaded(undefined);
    save.clear();
    const got = await load.run(() => connection.request<{ file: AgentFile }>("agents.files.get", { agentId, name: wanted }));
    if (got && ticket === lastAsked.current) {
      setLoaded(got.file);
      setDraft(got.file.content ?? "");
    }
  };
  useEffect(() => {
    void open(FILE_NAMES[0]);
  }, [agentId]);

  const problem = draftProblem(draft);
  const conflict = conflictRevision(save.error);
  const submit = async (e: Event) => {
    e.preventDefault();
    if (!loaded || problem) return;
    const saved = await save.run(() => connection.request<{ file: AgentFile }>("agents.files.set", saveParams(agentId, loaded, draft)));
    if (saved) {
      setLoaded(saved.file);
      list.reload();
    }
  };
  const id = `agent-file-${agentId}`;
  return (
    <div class="agent-files" data-testid="agent-files">
      <div class="row wrap-row" aria-label="Agent files">
        {FILE_NAMES.map((n) => {
          const file = list.data?.files.find((f) => f.name === n);
          return (
            <Button key={n} variant={n === name ? "primary" : "ghost"} testid={`agent-file-tab`} data-name={n} aria-pressed={n === name ? "true" : "false"} onClick={() => void open(n)}>
              {n} {file ? <span class="small">({fileStatus(file)})</span> : null}
            </Button>
          );
        })}
      </div>
      <ErrorNote error={load.error ?? list.error} testid="agent-file-load-error" />
      <form class="form" onSubmit={submit} data-testid="agent-file-form">
        <Field label={name} id={id} hint="Part of the agent's system prompt, after its instructions. Empty content removes the file.">
          <textarea id={id} rows={12} value={draft} readOnly={loaded?.name !== name} onInput={(e) => setDraft(e.currentTarget.value)} data-testid="agent-file-content" aria-describedby={`${id}-hint`} spellcheck={false} />
        </Field>
        {problem ? <Notice kind="warn" testid="agent-file-too-large">{problem}</Notice> : null}
        {conflict !== undefined ? (
          <Notice kind="warn" testid="agent-file-conflict">
            {name} was changed elsewhere (now revision {conflict}); your text was not saved.{" "}
            <Button variant="ghost" testid="agent-file-reload" onClick={() => void open(name)}>
              Load the current version
            </Button>
          </Notice>
        ) : (
          <ErrorNote error={save.error} testid="agent-file-save-error" />
        )}
        <div class="row">
          <Button type="submit" variant="primary" testid="agent-file-save" busy={save.busy || load.busy} disabled={!!problem || !loaded || !isDirty(loaded, draft)}>
            Save {name}
          </Button>
        </div>
      </form>
    </div>
  );
}
