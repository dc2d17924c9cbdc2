/** Small shared building blocks: sections, errors, confirm buttons, JSON, badges. */

import type { ButtonHTMLAttributes, ComponentChildren } from "preact";
import { useEffect, useState } from "preact/hooks";
import type { GatewayError } from "../gateway/errors";

export function Section(props: {
  title: string;
  actions?: ComponentChildren;
  children: ComponentChildren;
  testid?: string;
  class?: string;
}) {
  const id = `sec-${props.title.toLowerCase().replace(/[^a-z0-9]+/g, "-")}`;
  return (
    <section class={`card ${props.class ?? ""}`} aria-labelledby={id} data-testid={props.testid}>
      <header class="card-head">
        <h2 id={id}>{props.title}</h2>
        {props.actions ? <div class="card-actions">{props.actions}</div> : null}
      </header>
      <div class="card-body">{props.children}</div>
    </section>
  );
}

export function ErrorNote({ error, testid = "error" }: { error: GatewayError | undefined; testid?: string }) {
  if (!error) return null;
  const detail = [error.codeName, error.dataCode].filter(Boolean).join(" · ");
  const retry = typeof error.data.retryAfterMs === "number" ? ` Retry in ${Math.ceil(error.data.retryAfterMs / 1000)} s.` : "";
  return (
    <div class="note note-error" role="alert" data-testid={testid} data-code={error.codeName} data-data-code={error.dataCode}>
      <strong>{error.message}</strong>
      {retry}
      <span class="note-code">{detail}</span>
    </div>
  );
}

export function Notice(props: { kind?: "info" | "warn" | "ok"; children: ComponentChildren; testid?: string }) {
  return (
    <div class={`note note-${props.kind ?? "info"}`} role="status" data-testid={props.testid}>
      {props.children}
    </div>
  );
}

type ButtonProps = Omit<ButtonHTMLAttributes<HTMLButtonElement>, "type"> & {
  testid?: string;
  variant?: "primary" | "danger" | "ghost" | "default";
  busy?: boolean;
  disabled?: boolean;
  type?: "button" | "submit";
};

export function Button({ testid, variant = "default", busy, disabled, type = "button", children, ...rest }: ButtonProps) {
  return (
    <button
      {...rest}
      type={type}
      class={`btn btn-${variant} ${rest.class ?? ""}`}
      data-testid={testid}
      disabled={disabled || busy}
      aria-busy={busy ? "true" : undefined}
    >
      {children}
    </button>
  );
}

/** A destructive action in two clicks, without a modal dialog (which tests and phones dislike). */
export function ConfirmButton(props: {
  label: string;
  confirmLabel?: string;
  onConfirm: () => void;
  testid: string;
  busy?: boolean;
  disabled?: boolean;
}) {
  const [armed, setArmed] = useState(false);
  useEffect(() => {
    if (!armed) return;
    const timer = setTimeout(() => setArmed(false), 6000);
    return () => clearTimeout(timer);
  }, [armed]);
  if (!armed) {
    return (
      <Button variant="ghost" class="btn-danger-text" testid={props.testid} busy={props.busy} disabled={props.disabled} onClick={() => setArmed(true)}>
        {props.label}
      </Button>
    );
  }
  return (
    <span class="confirm">
      <Button
        variant="danger"
        testid={`${props.testid}-confirm`}
        onClick={() => {
          setArmed(false);
          props.onConfirm();
        }}
      >
        {props.confirmLabel ?? `Confirm ${props.label.toLowerCase()}`}
      </Button>
      <Button variant="ghost" testid={`${props.testid}-cancel`} onClick={() => setArmed(false)}>
        Cancel
      </Button>
    </span>
  );
}

export function JsonView({ value, testid }: { value: unknown; testid?: string }) {
  const text = value === undefined ? "" : JSON.stringify(value, null, 2);
  return (
    <pre class="json" data-testid={testid}>
      {text}
    </pre>
  );
}

export function Badge(props: { tone?: "ok" | "warn" | "bad" | "muted" | "accent"; children: ComponentChildren; testid?: string }) {
  return (
    <span class={`badge badge-${props.tone ?? "muted"}`} data-testid={props.testid}>
      {props.children}
    </span>
  );
}

export function Empty({ children, testid }: { children: ComponentChildren; testid?: string }) {
  return (
    <p class="empty" data-testid={testid}>
      {children}
    </p>
  );
}

export function Loading({ show }: { show: boolean }) {
  return show ? (
    <span class="loading" role="status" aria-live="polite">
      Loading…
    </span>
  ) : null;
}

/** A labelled form control; `hint` is linked by aria-describedby. */
export function Field(props: { label: string; id: string; hint?: string; children: ComponentChildren; class?: string }) {
  return (
    <div class={`field ${props.class ?? ""}`}>
      <label for={props.id}>{props.label}</label>
      {props.children}
      {props.hint ? (
        <small id={`${props.id}-hint`} class="hint">
          {props.hint}
        </small>
      ) : null}
    </div>
  );
}

/** Shows a secret once, with a copy button (token rotation, node pairing). */
export function SecretReveal({ label, secret, onClose, testid }: { label: string; secret: string; onClose: () => void; testid: string }) {
  const [copied, setCopied] = useState(false);
  return (
    <div class="note note-ok secret" role="status" data-testid={testid}>
      <div>
        <strong>{label}</strong> — shown once, copy it now.
      </div>
      <code class="secret-value" data-testid={`${testid}-value`}>
        {secret}
      </code>
      <div class="row">
        <Button
          testid={`${testid}-copy`}
          onClick={() => {
            void navigator.clipboard?.writeText(secret).then(() => setCopied(true), () => setCopied(false));
          }}
        >
          {copied ? "Copied" : "Copy"}
        </Button>
        <Button variant="ghost" testid={`${testid}-close`} onClick={onClose}>
          Done
        </Button>
      </div>
    </div>
  );
}
