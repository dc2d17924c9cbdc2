/** Approvals: pending exec requests (live), recent decisions, and the approval policy. */

import { useEffect, useState } from "preact/hooks";
import { pendingApprovals } from "../approvals/model";
import { approvals } from "../approvals/store";
import { connection } from "../app/connection";
import { useAction, useRpc } from "../app/hooks";
import { useStore } from "../app/store";
import { ApprovalCard } from "../components/ApprovalCard";
import { Button, Empty, ErrorNote, Field, Notice, Section } from "../components/ui";

interface Policy {
  ask: "always" | "on-miss" | "off";
  allowlist: string[];
}

function PolicyEditor() {
  const rpc = useRpc<Policy>("exec.approvals.get");
  const [ask, setAsk] = useState<Policy["ask"]>("on-miss");
  const [allowlist, setAllowlist] = useState("");
  const [saved, setSaved] = useState(false);
  const action = useAction();
  useEffect(() => {
    if (!rpc.data) return;
    setAsk(rpc.data.ask ?? "on-miss");
    setAllowlist((rpc.data.allowlist ?? []).join("\n"));
  }, [rpc.data]);
  const save = async (e: Event) => {
    e.preventDefault();
    setSaved(false);
    const list = allowlist.split("\n").map((l) => l.trim()).filter(Boolean);
    const ok = await action.run(() => connection.request("exec.approvals.set", { ask, allowlist: list }));
    if (ok !== undefined) {
      setSaved(true);
      rpc.reload();
    }
  };
  return (
    <Section title="Policy" testid="approvals-policy">
      <ErrorNote error={rpc.error} />
      <form class="form" onSubmit={save}>
        <Field label="Ask before running a command" id="policy-ask">
          <select id="policy-ask" value={ask} onChange={(e) => setAsk(e.currentTarget.value as Policy["ask"])} data-testid="policy-ask">
            <option value="always">Always</option>
            <option value="on-miss">When not on the allowlist</option>
            <option value="off">Never (run everything)</option>
          </select>
        </Field>
        <Field label="Allowlist" id="policy-allowlist" hint="One command pattern per line; “Always allow” adds to it.">
          <textarea
            id="policy-allowlist"
            rows={6}
            value={allowlist}
            onInput={(e) => setAllowlist(e.currentTarget.value)}
            data-testid="policy-allowlist"
            aria-describedby="policy-allowlist-hint"
            spellcheck={false}
            class="mono"
          />
        </Field>
        <div class="row">
          <Button type="submit" variant="primary" testid="policy-save" busy={action.busy} disabled={!rpc.data}>
            Save policy
          </Button>
          {saved ? <span class="muted" role="status">Saved.</span> : null}
        </div>
        <ErrorNote error={action.error} testid="policy-error" />
      </form>
    </Section>
  );
}

export function ApprovalsPage() {
  const list = useStore(approvals);
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, []);
  const pending = pendingApprovals(list, now);
  const done = list.filter((e) => e.resolved).reverse();
  return (
    <div class="page">
      <Section title="Pending" testid="approvals-pending">
        {!connection.hasScope("operator.approvals") && connection.hello ? (
          <Notice kind="warn">This connection lacks operator.approvals: requests will not reach it.</Notice>
        ) : null}
        {pending.length ? (
          <div class="stack">
            {pending.map((entry) => (
              <ApprovalCard key={entry.request.id} entry={entry} />
            ))}
          </div>
        ) : (
          <Empty testid="approvals-empty">Nothing waits for a decision. New requests appear here as they arrive.</Empty>
        )}
      </Section>
      {done.length ? (
        <Section title="Recent decisions" testid="approvals-history">
          <div class="stack">
            {done.map((entry) => (
              <ApprovalCard key={entry.request.id} entry={entry} />
            ))}
          </div>
        </Section>
      ) : null}
      <PolicyEditor />
    </div>
  );
}
