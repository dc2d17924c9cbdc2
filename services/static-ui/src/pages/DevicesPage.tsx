/** Devices & nodes: pairing requests, paired devices and their tokens, nodes. */

import { useState } from "preact/hooks";
import { connection, UI_SCOPES } from "../app/connection";
import { useAction, useGatewayEvent, useRpc } from "../app/hooks";
import { formatAgo, formatValue, shortId } from "../components/format";
import { Badge, Button, ConfirmButton, Empty, ErrorNote, Field, Loading, SecretReveal, Section } from "../components/ui";

type Rec = Record<string, unknown>;
const str = (v: unknown) => (typeof v === "string" ? v : undefined);
const strs = (v: unknown) => (Array.isArray(v) ? v.map(String) : []);

interface PairList {
  pending?: Rec[];
  paired?: Rec[];
}

function whenOf(r: Rec): unknown {
  return r.ts ?? r.createdAt ?? r.requestedAt ?? r.createdAtMs ?? r.approvedAt ?? r.pairedAt;
}

/** The client a pairing request came from: `client {id, displayName, platform, …}`. */
function clientOf(r: Rec): Rec {
  return typeof r.client === "object" && r.client !== null ? (r.client as Rec) : {};
}

function deviceName(r: Rec, fallback: string): string {
  const client = clientOf(r);
  return str(r.displayName) ?? str(client.displayName) ?? str(r.clientId) ?? str(client.id) ?? fallback;
}

function ScopePicker({ value, onChange, idPrefix }: { value: string[]; onChange: (v: string[]) => void; idPrefix: string }) {
  return (
    <fieldset class="scopes">
      <legend class="small muted">Scopes to grant</legend>
      {UI_SCOPES.map((scope) => (
        <label key={scope} class="check">
          <input
            type="checkbox"
            id={`${idPrefix}-${scope}`}
            checked={value.includes(scope)}
            data-testid={`scope-${scope}`}
            onChange={(e) => onChange(e.currentTarget.checked ? [...value, scope] : value.filter((s) => s !== scope))}
          />
          {scope}
        </label>
      ))}
    </fieldset>
  );
}

function PendingDevice({ req, onDone }: { req: Rec; onDone: () => void }) {
  const requestId = str(req.requestId) ?? "";
  const requested = strs(req.scopes);
  const platform = req.platform ?? clientOf(req).platform;
  const [scopes, setScopes] = useState(requested);
  const [custom, setCustom] = useState(false);
  const action = useAction();
  const decide = (method: string) =>
    void action
      .run(() => connection.request(method, custom && method.endsWith("approve") ? { requestId, scopes } : { requestId }))
      .then((r) => r !== undefined && onDone());
  return (
    <li class="item" data-testid="device-pending" data-request-id={requestId} data-device-id={str(req.deviceId)}>
      <div class="item-head">
        <div>
          <div class="strong">{deviceName(req, "New device")}</div>
          <div class="muted small">
            request <code>{requestId}</code> · device <code title={str(req.deviceId)}>{shortId(str(req.deviceId) ?? "?", 12)}</code>
            {platform ? ` · ${formatValue(platform)}` : ""}
            {req.ip ? ` · ${formatValue(req.ip)}` : ""} · {formatAgo(whenOf(req))}
          </div>
          <div class="small">
            {str(req.role) ?? "operator"}: {requested.length ? requested.map((s) => <Badge key={s}>{s}</Badge>) : <span class="muted">no scopes</span>}
          </div>
        </div>
        <div class="row wrap-row">
          <Button variant="primary" testid="device-approve" busy={action.busy} onClick={() => decide("device.pair.approve")}>
            Approve
          </Button>
          <Button variant="danger" testid="device-reject" busy={action.busy} onClick={() => decide("device.pair.reject")}>
            Reject
          </Button>
        </div>
      </div>
      <label class="check small">
        <input type="checkbox" checked={custom} onChange={(e) => setCustom(e.currentTarget.checked)} data-testid="device-custom-scopes" />
        Grant other scopes than requested
      </label>
      {custom ? <ScopePicker value={scopes} onChange={setScopes} idPrefix={`scopes-${requestId}`} /> : null}
      <ErrorNote error={action.error} testid="device-pending-error" />
    </li>
  );
}

function PairedDevice({ dev, onDone }: { dev: Rec; onDone: () => void }) {
  const deviceId = str(dev.deviceId) ?? str(dev.id) ?? "";
  const roles = strs(dev.roles).length ? strs(dev.roles) : [str(dev.role) ?? "operator"];
  const [role, setRole] = useState(roles[0] ?? "operator");
  const [token, setToken] = useState<string | undefined>(undefined);
  const action = useAction();
  const rotate = () =>
    void action
      .run(() => connection.request<{ token: string }>("device.token.rotate", { deviceId, role }))
      .then((r) => r && setToken(r.token));
  const revoke = () => void action.run(() => connection.request("device.token.revoke", { deviceId, role })).then(onDone);
  const remove = () => void action.run(() => connection.request("device.pair.remove", { deviceId })).then(onDone);
  const isMe = connection.device.get()?.id === deviceId;
  return (
    <li class="item" data-testid="device-paired" data-device-id={deviceId}>
      <div class="item-head">
        <div>
          <div class="strong">
            {deviceName(dev, "Device")} {isMe ? <Badge tone="accent">this browser</Badge> : null}
          </div>
          <div class="muted small">
            <code title={deviceId}>{shortId(deviceId, 16)}</code>
            {dev.platform ? ` · ${formatValue(dev.platform)}` : ""} · paired {formatAgo(whenOf(dev))}
            {dev.lastSeenAt ? ` · seen ${formatAgo(dev.lastSeenAt)}` : ""}
          </div>
          <div class="small">
            {strs(dev.scopes).map((s) => (
              <Badge key={s}>{s}</Badge>
            ))}
          </div>
        </div>
        <div class="row wrap-row">
          <label class="sr-only" for={`role-${deviceId}`}>
            Token role
          </label>
          <select id={`role-${deviceId}`} value={role} onChange={(e) => setRole(e.currentTarget.value)} data-testid="device-token-role">
            {[...new Set([...roles, "operator", "node"])].map((r) => (
              <option key={r} value={r}>
                {r}
              </option>
            ))}
          </select>
          <Button testid="device-token-rotate" busy={action.busy} onClick={rotate}>
            Rotate token
          </Button>
          <ConfirmButton label="Revoke" testid="device-token-revoke" busy={action.busy} onConfirm={revoke} />
          <ConfirmButton label="Remove" testid="device-remove" busy={action.busy} onConfirm={remove} />
        </div>
      </div>
      {token ? <SecretReveal label={`New ${role} token`} secret={token} testid="device-token-new" onClose={() => setToken(undefined)} /> : null}
      <ErrorNote error={action.error} testid="device-paired-error" />
    </li>
  );
}

function DevicesSection() {
  const rpc = useRpc<PairList>("device.pair.list");
  useGatewayEvent("device.pair.requested", rpc.reload);
  useGatewayEvent("device.pair.resolved", rpc.reload);
  const pending = rpc.data?.pending ?? [];
  const paired = rpc.data?.paired ?? [];
  return (
    <>
      <Section title="Device pairing requests" testid="devices-pending" actions={<Loading show={rpc.loading} />}>
        <ErrorNote error={rpc.error} />
        {pending.length ? (
          <ul class="items">
            {pending.map((r, i) => (
              <PendingDevice key={str(r.requestId) ?? i} req={r} onDone={rpc.reload} />
            ))}
          </ul>
        ) : (
          <Empty testid="devices-pending-empty">No device waits for approval.</Empty>
        )}
      </Section>
      <Section title="Paired devices" testid="devices-paired">
        {paired.length ? (
          <ul class="items">
            {paired.map((d, i) => (
              <PairedDevice key={str(d.deviceId) ?? i} dev={d} onDone={rpc.reload} />
            ))}
          </ul>
        ) : (
          <Empty>No paired devices.</Empty>
        )}
      </Section>
    </>
  );
}

function NodeRename({ nodeId, current, onDone }: { nodeId: string; current: string; onDone: () => void }) {
  const [open, setOpen] = useState(false);
  const [name, setName] = useState(current);
  const action = useAction();
  if (!open) {
    return (
      <Button variant="ghost" testid="node-rename" onClick={() => setOpen(true)}>
        Rename
      </Button>
    );
  }
  return (
    <form
      class="inline-form"
      onSubmit={(e) => {
        e.preventDefault();
        void action.run(() => connection.request("node.rename", { nodeId, displayName: name.trim() })).then((r) => {
          if (r !== undefined) {
            setOpen(false);
            onDone();
          }
        });
      }}
    >
      <Field label="Display name" id={`node-name-${nodeId}`}>
        <input id={`node-name-${nodeId}`} value={name} onInput={(e) => setName(e.currentTarget.value)} required data-testid="node-rename-input" />
      </Field>
      <Button type="submit" variant="primary" testid="node-rename-save" busy={action.busy}>
        Save
      </Button>
      <Button variant="ghost" onClick={() => setOpen(false)}>
        Cancel
      </Button>
      <ErrorNote error={action.error} />
    </form>
  );
}

function NodesSection() {
  const nodes = useRpc<{ nodes: Rec[] }>("node.list");
  const pairs = useRpc<PairList>("node.pair.list");
  const [token, setToken] = useState<{ nodeId: string; token: string } | undefined>(undefined);
  const action = useAction();
  const reload = () => {
    nodes.reload();
    pairs.reload();
  };
  useGatewayEvent("node.pair.requested", reload);
  useGatewayEvent("node.pair.resolved", reload);
  const decide = (method: string, requestId: string) =>
    void action
      .run(() => connection.request<{ nodeId?: string; token?: string }>(method, { requestId }))
      .then((r) => {
        if (r?.token) setToken({ nodeId: r.nodeId ?? "", token: r.token });
        if (r !== undefined) reload();
      });
  const pending = pairs.data?.pending ?? [];
  const list = nodes.data?.nodes ?? [];
  return (
    <>
      <Section title="Node pairing requests" testid="nodes-pending" actions={<Loading show={pairs.loading} />}>
        <ErrorNote error={pairs.error} />
        {token ? (
          <SecretReveal label={`Token for node ${token.nodeId}`} secret={token.token} testid="node-token-new" onClose={() => setToken(undefined)} />
        ) : null}
        {pending.length ? (
          <ul class="items">
            {pending.map((r, i) => {
              const requestId = str(r.requestId) ?? "";
              return (
                <li key={requestId || i} class="item" data-testid="node-pending" data-request-id={requestId} data-node-id={str(r.nodeId)}>
                  <div class="item-head">
                    <div>
                      <div class="strong">{str(r.displayName) ?? str(r.nodeId)}</div>
                      <div class="muted small">
                        <code>{str(r.nodeId)}</code>
                        {r.platform ? ` · ${formatValue(r.platform)}` : ""} · {formatAgo(whenOf(r))}
                      </div>
                      {strs(r.commands).length ? <div class="small">commands: {strs(r.commands).join(", ")}</div> : null}
                    </div>
                    <div class="row wrap-row">
                      <Button variant="primary" testid="node-approve" busy={action.busy} onClick={() => decide("node.pair.approve", requestId)}>
                        Approve
                      </Button>
                      <Button variant="danger" testid="node-reject" busy={action.busy} onClick={() => decide("node.pair.reject", requestId)}>
                        Reject
                      </Button>
                    </div>
                  </div>
                </li>
              );
            })}
          </ul>
        ) : (
          <Empty testid="nodes-pending-empty">No node waits for approval.</Empty>
        )}
        <ErrorNote error={action.error} testid="node-pending-error" />
      </Section>
      <Section title="Nodes" testid="nodes" actions={<Loading show={nodes.loading} />}>
        <ErrorNote error={nodes.error} />
        {list.length ? (
          <div class="table-wrap">
            <table data-testid="nodes-table">
              <thead>
                <tr>
                  <th scope="col">Node</th>
                  <th scope="col">Platform</th>
                  <th scope="col">State</th>
                  <th scope="col">Commands</th>
                  <th scope="col">Actions</th>
                </tr>
              </thead>
              <tbody>
                {list.map((n, i) => {
                  const nodeId = str(n.nodeId) ?? String(i);
                  return (
                    <tr key={nodeId} data-testid="node-row" data-node-id={nodeId}>
                      <td>
                        <div class="strong">{str(n.displayName) ?? nodeId}</div>
                        <code class="small">{nodeId}</code>
                      </td>
                      <td>{formatValue(n.platform)}</td>
                      <td>
                        <Badge tone={n.connected ? "ok" : "muted"}>{n.connected ? "connected" : "offline"}</Badge>{" "}
                        <Badge tone={n.paired ? "accent" : "warn"}>{n.paired ? "paired" : "unpaired"}</Badge>
                      </td>
                      <td class="clip">{strs(n.commands).join(", ") || "—"}</td>
                      <td>
                        <NodeRename nodeId={nodeId} current={str(n.displayName) ?? ""} onDone={reload} />
                      </td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </div>
        ) : (
          <Empty>No nodes known.</Empty>
        )}
      </Section>
    </>
  );
}

export function DevicesPage() {
  return (
    <div class="page">
      <DevicesSection />
      <NodesSection />
    </div>
  );
}
