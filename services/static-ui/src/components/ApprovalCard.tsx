/** One pending exec approval with its three decisions. */

import { useEffect, useState } from "preact/hooks";
import { useAction } from "../app/hooks";
import type { ApprovalEntry, Decision } from "../approvals/model";
import { resolveApproval } from "../approvals/store";
import { Badge, Button, ErrorNote } from "./ui";

function useCountdown(until: number | undefined): number | undefined {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    if (until === undefined) return;
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, [until]);
  return until === undefined ? undefined : Math.max(0, Math.ceil((until - now) / 1000));
}

export function ApprovalCard({ entry, compact = false }: { entry: ApprovalEntry; compact?: boolean }) {
  const { request, resolved } = entry;
  const action = useAction();
  const left = useCountdown(resolved ? undefined : request.expiresAtMs);
  const decide = (decision: Decision) => void action.run(() => resolveApproval(request.id, decision));
  return (
    <article
      class={`approval ${compact ? "approval-compact" : ""}`}
      data-testid="approval-card"
      data-id={request.id}
      data-state={resolved ? "resolved" : "pending"}
      aria-label={`Approval request for ${request.command}`}
    >
      <div class="approval-head">
        <strong>Run command?</strong>
        {resolved ? (
          <Badge tone={resolved.decision === "deny" ? "bad" : "ok"} testid="approval-decision">
            {resolved.decision}
            {resolved.resolvedBy ? ` by ${resolved.resolvedBy}` : ""}
          </Badge>
        ) : left !== undefined ? (
          <Badge tone={left < 15 ? "bad" : "warn"}>{left > 0 ? `expires in ${left}s` : "expired"}</Badge>
        ) : null}
      </div>
      <pre class="command" data-testid="approval-command">
        {request.command}
      </pre>
      <dl class="kv small">
        {request.cwd ? (
          <>
            <dt>cwd</dt>
            <dd>
              <code>{request.cwd}</code>
            </dd>
          </>
        ) : null}
        {request.agentId ? (
          <>
            <dt>agent</dt>
            <dd>{request.agentId}</dd>
          </>
        ) : null}
        {request.nodeId ? (
          <>
            <dt>node</dt>
            <dd>{request.nodeId}</dd>
          </>
        ) : null}
        {request.sessionKey && !compact ? (
          <>
            <dt>session</dt>
            <dd>
              <code>{request.sessionKey}</code>
            </dd>
          </>
        ) : null}
      </dl>
      {!resolved ? (
        <div class="row">
          <Button variant="primary" testid="approval-allow-once" busy={action.busy} onClick={() => decide("allow-once")}>
            Allow once
          </Button>
          <Button testid="approval-allow-always" busy={action.busy} onClick={() => decide("allow-always")}>
            Always allow
          </Button>
          <Button variant="danger" testid="approval-deny" busy={action.busy} onClick={() => decide("deny")}>
            Deny
          </Button>
        </div>
      ) : null}
      <ErrorNote error={action.error} testid="approval-error" />
    </article>
  );
}
