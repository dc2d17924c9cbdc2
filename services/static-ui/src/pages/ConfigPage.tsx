/**
 * Config: a schema-derived form for simple fields (sent as a merge patch) and a JSON editor
 * for the whole document (sent with config.set), both against `baseHash`. A stale hash
 * (CONFLICT) shows the operator's change beside the gateway's current version and lets
 * them reapply it on top, or drop it.
 */

import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { connection } from "../app/connection";
import { useAction, useGatewayEvent, useRpc } from "../app/hooks";
import {
  applyMergePatch,
  formFields,
  getPath,
  mergePatch,
  parseFieldInput,
  setPath,
  type FormField,
  type JsonSchema,
} from "../config/schema";
import { Badge, Button, Empty, ErrorNote, Field, JsonView, Notice, Section } from "../components/ui";
import { asGatewayError } from "../gateway/errors";

interface ConfigDoc {
  config: Record<string, unknown>;
  hash: string;
  revision?: number;
}

type Write = { kind: "patch"; body: unknown } | { kind: "set"; body: unknown };

interface Conflict {
  write: Write;
  theirs: ConfigDoc;
}

const isEmptyPatch = (p: unknown) => typeof p === "object" && p !== null && Object.keys(p).length === 0;

function FieldInput({ field, value, onChange }: { field: FormField; value: unknown; onChange: (v: unknown) => void }) {
  const id = `cfg-${field.path.join("-")}`;
  const testid = `config-field-${field.path.join(".")}`;
  const [text, setText] = useState(value === null || value === undefined ? "" : String(value));
  const [bad, setBad] = useState<string | undefined>(undefined);
  useEffect(() => setText(value === null || value === undefined ? "" : String(value)), [value]);
  const commit = (raw: string) => {
    setText(raw);
    const parsed = parseFieldInput(field, raw);
    if ("error" in parsed) setBad(`Enter ${parsed.error}.`);
    else {
      setBad(undefined);
      onChange(parsed.value);
    }
  };
  const label = `${field.path.slice(0, -1).join(" › ")}${field.path.length > 1 ? " › " : ""}${field.label}`;
  const hintId = field.description || bad ? `${id}-hint` : undefined;
  if (field.kind === "boolean") {
    return (
      <div class="field">
        <label class="check" for={id}>
          <input id={id} type="checkbox" checked={value === true} onChange={(e) => onChange(e.currentTarget.checked)} data-testid={testid} aria-describedby={hintId} />
          {label}
        </label>
        {field.description ? <small id={hintId} class="hint">{field.description}</small> : null}
      </div>
    );
  }
  return (
    <Field label={label} id={id} {...(bad ?? field.description ? { hint: bad ?? field.description } : {})}>
      {field.kind === "enum" ? (
        <select id={id} value={text} onChange={(e) => commit(e.currentTarget.value)} data-testid={testid} aria-describedby={hintId}>
          {field.nullable || value === undefined ? <option value="">—</option> : null}
          {(field.options ?? []).map((o) => (
            <option key={String(o)} value={String(o)}>
              {String(o)}
            </option>
          ))}
        </select>
      ) : (
        // Numbers as text with a numeric keyboard: a number input hides what was typed wrong.
        <input
          id={id}
          {...(field.kind === "secret" ? { type: "password" as const } : { type: "text" as const })}
          {...(field.kind === "integer" ? { inputMode: "numeric" as const } : field.kind === "number" ? { inputMode: "decimal" as const } : {})}
          value={text}
          aria-invalid={bad ? "true" : undefined}
          aria-describedby={hintId}
          autocomplete="off"
          onInput={(e) => commit(e.currentTarget.value)}
          data-testid={testid}
        />
      )}
    </Field>
  );
}

export function ConfigPage() {
  const doc = useRpc<ConfigDoc>("config.get");
  const schema = useRpc<JsonSchema>("config.schema");
  const [tab, setTab] = useState<"form" | "json">("form");
  const [draft, setDraft] = useState<Record<string, unknown>>({});
  // The hash of the version the draft was copied from. Until it matches the loaded version the
  // form is not shown and nothing counts as edited: a field that got its loaded value a render
  // late would land under the operator's typing (select-all of "", then "50" set, then "57"
  // typed gives "5057").
  const [draftHash, setDraftHash] = useState<string | undefined>(undefined);
  const [jsonText, setJsonText] = useState("");
  const [jsonError, setJsonError] = useState<string | undefined>(undefined);
  const [applyAll, setApplyAll] = useState(false);
  const [conflict, setConflict] = useState<Conflict | undefined>(undefined);
  const [remoteHash, setRemoteHash] = useState<string | undefined>(undefined);
  const [saved, setSaved] = useState<string | undefined>(undefined);
  const action = useAction();
  const conflictRef = useRef<HTMLDivElement>(null);

  const current = doc.data;

  // The save buttons sit below the form: bring the conflict (above it) to the operator.
  useEffect(() => {
    if (!conflict) return;
    conflictRef.current?.scrollIntoView({ block: "start" });
    conflictRef.current?.focus({ preventScroll: true });
  }, [conflict]);
  useEffect(() => {
    if (!current) return;
    setDraft(current.config);
    setDraftHash(current.hash);
    setJsonText(JSON.stringify(current.config, null, 2));
    setRemoteHash(undefined);
  }, [current]);

  const fields = useMemo(() => (schema.data ? formFields(schema.data) : []), [schema.data]);
  const synced = current !== undefined && draftHash === current.hash;
  const formPatch = current && synced ? mergePatch(current.config, draft) : {};
  const jsonDirty = current && synced ? jsonText !== JSON.stringify(current.config, null, 2) : false;
  const dirty = !isEmptyPatch(formPatch) || jsonDirty;

  useGatewayEvent("config.changed", (payload) => {
    const hash = (payload as { hash?: unknown })?.hash;
    if (typeof hash !== "string" || hash === current?.hash) return;
    if (dirty) setRemoteHash(hash);
    else doc.reload();
  });

  const write = async (w: Write, baseHash: string) => {
    setSaved(undefined);
    const method = applyAll ? "config.apply" : w.kind === "patch" ? "config.patch" : "config.set";
    const params = w.kind === "patch" ? { patch: w.body, baseHash } : { config: w.body, baseHash };
    try {
      const res = await connection.request<{ hash: string }>(method, params, { timeoutMs: 120_000 });
      setConflict(undefined);
      setSaved(res.hash);
      doc.reload();
    } catch (err) {
      const error = asGatewayError(err);
      if (!error.is("CONFLICT")) throw error;
      const theirs = await connection.request<ConfigDoc>("config.get");
      setConflict({ write: w, theirs });
    }
  };

  const saveForm = () => current && void action.run(() => write({ kind: "patch", body: formPatch }, current.hash));
  const saveJson = () => {
    if (!current) return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(jsonText);
    } catch (err) {
      setJsonError(`Not valid JSON: ${(err as Error).message}`);
      return;
    }
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
      setJsonError("The configuration must be a JSON object.");
      return;
    }
    setJsonError(undefined);
    void action.run(() => write({ kind: "set", body: parsed }, current.hash));
  };

  const reapply = () => conflict && void action.run(() => write(conflict.write, conflict.theirs.hash));
  const discard = () => {
    setConflict(undefined);
    doc.reload();
  };

  return (
    <div class="page">
      <Section
        title="Configuration"
        testid="config"
        actions={
          current ? (
            <span class="muted small" data-testid="config-hash" data-hash={current.hash}>
              rev {current.revision ?? "—"} · <code>{current.hash.slice(0, 12)}</code>
            </span>
          ) : null
        }
      >
        <ErrorNote error={doc.error ?? schema.error} testid="config-load-error" />
        {remoteHash ? (
          <Notice kind="warn" testid="config-remote-change">
            The configuration changed on the gateway while you were editing.{" "}
            <Button testid="config-reload" onClick={() => doc.reload()}>
              Load the new version (drops your edits)
            </Button>
          </Notice>
        ) : null}
        {conflict ? (
          <div class="conflict" data-testid="config-conflict" role="alert" ref={conflictRef} tabIndex={-1}>
            <p>
              <strong>Someone changed the configuration first.</strong> Your change was not saved. Compare, then reapply it on
              top of the current version or discard it.
            </p>
            <div class="grid-2">
              <div>
                <h3>Your change ({conflict.write.kind === "patch" ? "merge patch" : "whole document"})</h3>
                <JsonView value={conflict.write.body} testid="config-conflict-mine" />
              </div>
              <div>
                <h3>
                  Current on the gateway <Badge>{conflict.theirs.hash.slice(0, 12)}</Badge>
                </h3>
                <JsonView value={conflict.theirs.config} testid="config-conflict-theirs" />
              </div>
            </div>
            {conflict.write.kind === "patch" ? (
              <details class="details">
                <summary>Result of reapplying</summary>
                <JsonView value={applyMergePatch(conflict.theirs.config, conflict.write.body)} />
              </details>
            ) : null}
            <div class="row">
              <Button variant="primary" testid="config-reapply" busy={action.busy} onClick={reapply}>
                Reapply my change
              </Button>
              <Button variant="ghost" testid="config-discard" onClick={discard}>
                Discard my change
              </Button>
            </div>
          </div>
        ) : null}

        <div class="tabs" role="tablist" aria-label="Editor">
          <button type="button" role="tab" aria-selected={tab === "form"} class="tab" data-testid="config-tab-form" onClick={() => setTab("form")}>
            Form
          </button>
          <button type="button" role="tab" aria-selected={tab === "json"} class="tab" data-testid="config-tab-json" onClick={() => setTab("json")}>
            JSON
          </button>
        </div>

        {tab === "form" ? (
          <div role="tabpanel" class="tabpanel" data-testid="config-form">
            {fields.length && synced ? (
              <div class="form form-grid">
                {fields.map((f) => (
                  <FieldInput key={f.path.join(".")} field={f} value={getPath(draft, f.path)} onChange={(v) => setDraft((d) => setPath(d, f.path, v))} />
                ))}
              </div>
            ) : (
              <Empty>{schema.loading || doc.loading || (current && !synced) ? "Loading…" : "The schema has no simple fields; use the JSON editor."}</Empty>
            )}
            {!isEmptyPatch(formPatch) ? (
              <details class="details" open>
                <summary>Pending change</summary>
                <JsonView value={formPatch} testid="config-form-patch" />
              </details>
            ) : null}
            <div class="row">
              <Button variant="primary" testid="config-save-form" busy={action.busy} disabled={!current || isEmptyPatch(formPatch)} onClick={saveForm}>
                Save changes
              </Button>
              <Button variant="ghost" testid="config-reset-form" disabled={isEmptyPatch(formPatch)} onClick={() => current && setDraft(current.config)}>
                Reset
              </Button>
            </div>
          </div>
        ) : (
          <div role="tabpanel" class="tabpanel" data-testid="config-json">
            <label for="config-json-text" class="sr-only">
              Configuration JSON
            </label>
            <textarea
              id="config-json-text"
              class="mono code-editor"
              rows={24}
              spellcheck={false}
              value={jsonText}
              readOnly={!synced}
              onInput={(e) => setJsonText(e.currentTarget.value)}
              data-testid="config-json-text"
              aria-invalid={jsonError ? "true" : undefined}
            />
            {jsonError ? (
              <div class="note note-error" role="alert" data-testid="config-json-error">
                {jsonError}
              </div>
            ) : null}
            <div class="row">
              <Button variant="primary" testid="config-save-json" busy={action.busy} disabled={!current || !jsonDirty} onClick={saveJson}>
                Save document
              </Button>
              <Button variant="ghost" testid="config-reset-json" disabled={!jsonDirty} onClick={() => current && setJsonText(JSON.stringify(current.config, null, 2))}>
                Reset
              </Button>
            </div>
          </div>
        )}
        <label class="check">
          <input type="checkbox" checked={applyAll} onChange={(e) => setApplyAll(e.currentTarget.checked)} data-testid="config-apply-all" />
          Wait until every service applied it (config.apply)
        </label>
        <ErrorNote error={action.error} testid="config-save-error" />
        {saved && !dirty ? (
          <Notice kind="ok" testid="config-saved">
            Saved. New hash <code>{saved.slice(0, 12)}</code>.
          </Notice>
        ) : null}
      </Section>
    </div>
  );
}
