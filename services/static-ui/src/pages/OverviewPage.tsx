/** Overview: health of every service, versions and counts, who is connected — live. */

import { Fragment } from "preact";
import { useEffect, useState } from "preact/hooks";
import { connection } from "../app/connection";
import { useConnectionState, useGatewayEvent, useReloadOnEvent, useRpc } from "../app/hooks";
import { formatAgo, formatDuration, formatTime, formatValue, humanizeKey } from "../components/format";
import { Badge, Empty, ErrorNote, JsonView, Loading, Section } from "../components/ui";

type Rec = Record<string, unknown>;
const isRec = (v: unknown): v is Rec => typeof v === "object" && v !== null && !Array.isArray(v);

interface Health {
  ok?: boolean;
  ts?: number;
  services?: Record<string, { ok?: boolean; instances?: unknown }>;
}

function instanceCount(v: unknown): string {
  if (Array.isArray(v)) return String(v.length);
  return formatValue(v);
}

function presenceList(v: unknown): Rec[] {
  const list = Array.isArray(v) ? v : isRec(v) && Array.isArray(v.presence) ? v.presence : [];
  return list.filter(isRec);
}

function HealthCard() {
  const rpc = useRpc<Health>("health");
  const [live, setLive] = useState<Health | undefined>(undefined);
  const snapshot = useConnectionState().hello?.snapshot?.health as Health | undefined;
  useGatewayEvent("health.changed", (payload) => isRec(payload) && setLive(payload as Health));
  useEffect(() => setLive(undefined), [rpc.data]);
  const health = live ?? rpc.data ?? snapshot;
  const services = Object.entries(health?.services ?? {});
  return (
    <Section
      title="Health"
      testid="overview-health"
      actions={
        <>
          <Loading show={rpc.loading} />
          {health ? (
            <Badge tone={health.ok ? "ok" : "bad"} testid="health-ok">
              {health.ok ? "healthy" : "degraded"}
            </Badge>
          ) : null}
        </>
      }
    >
      <ErrorNote error={rpc.error} />
      {services.length ? (
        <div class="table-wrap">
          <table data-testid="health-services">
            <thead>
              <tr>
                <th scope="col">Service</th>
                <th scope="col">State</th>
                <th scope="col">Instances</th>
              </tr>
            </thead>
            <tbody>
              {services.map(([name, s]) => (
                <tr key={name} data-testid="health-service" data-service={name}>
                  <th scope="row">{name}</th>
                  <td>
                    <Badge tone={s?.ok ? "ok" : "bad"}>{s?.ok ? "ok" : "down"}</Badge>
                  </td>
                  <td>{instanceCount(s?.instances)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : (
        <Empty>No service reported yet.</Empty>
      )}
      {health?.ts ? <p class="muted small">as of {formatTime(health.ts)}</p> : null}
    </Section>
  );
}

/** `status.services` `{name: {instances: [{id, version}]}}` as rows, one per instance. */
function instanceRows(services: unknown): { service: string; id: string; version: string }[] | undefined {
  if (!isRec(services)) return undefined;
  const rows: { service: string; id: string; version: string }[] = [];
  for (const [service, entry] of Object.entries(services)) {
    if (!isRec(entry) || !Array.isArray(entry.instances)) return undefined;
    for (const inst of entry.instances) {
      if (!isRec(inst)) return undefined;
      rows.push({ service, id: formatValue(inst.id), version: formatValue(inst.version) });
    }
  }
  return rows;
}

function InstancesTable({ rows }: { rows: { service: string; id: string; version: string }[] }) {
  return (
    <div class="table-wrap">
      <table data-testid="status-services">
        <thead>
          <tr>
            <th scope="col">Service</th>
            <th scope="col">Instance</th>
            <th scope="col">Version</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((r) => (
            <tr key={`${r.service}/${r.id}`} data-testid="status-instance" data-service={r.service}>
              <td>{r.service}</td>
              <td>
                <code>{r.id}</code>
              </td>
              <td>{r.version}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** A status or presence list read on the page's load can predate presence written a moment
 * later (a client's presence, this page's own included, is written after its hello): read
 * again after presence changes, at most once per `PRESENCE_RELOAD_MS`. */
const PRESENCE_RELOAD_MS = 2000;

function StatusCard() {
  const rpc = useRpc<Rec>("status");
  const hello = useConnectionState().hello;
  useReloadOnEvent("presence.changed", rpc.reload, PRESENCE_RELOAD_MS);
  const data = rpc.data;
  const scalars = data ? Object.entries(data).filter(([, v]) => !isRec(v) && !Array.isArray(v)) : [];
  const nested = data ? Object.entries(data).filter(([, v]) => isRec(v) || Array.isArray(v)) : [];
  return (
    <Section
      title="Status"
      testid="overview-status"
      actions={
        <button type="button" class="btn btn-ghost" data-testid="status-refresh" onClick={rpc.reload}>
          Refresh
        </button>
      }
    >
      <ErrorNote error={rpc.error} />
      <dl class="kv" data-testid="status-summary">
        <dt>Gateway</dt>
        <dd>
          {hello?.server?.version ?? "—"} <span class="muted">({hello?.server?.instance ?? "—"})</span>
        </dd>
        <dt>Protocol</dt>
        <dd>{hello?.protocol ?? "—"}</dd>
        {scalars.map(([k, v]) => (
          <Fragment key={k}>
            <dt>{humanizeKey(k)}</dt>
            <dd>{/uptime/i.test(k) ? formatDuration(v) : formatValue(v)}</dd>
          </Fragment>
        ))}
      </dl>
      {nested.map(([k, v]) => {
        const rows = k === "services" ? instanceRows(v) : undefined;
        if (rows) return <InstancesTable key={k} rows={rows} />;
        return (
          <details key={k} class="details" open={k === "services"}>
            <summary>
              {humanizeKey(k)}
              {Array.isArray(v) ? ` (${v.length})` : isRec(v) ? ` (${Object.keys(v).length})` : ""}
            </summary>
            <JsonView value={v} testid={`status-${k}`} />
          </details>
        );
      })}
    </Section>
  );
}

function PresenceCard() {
  const rpc = useRpc<unknown>("system-presence");
  const [live, setLive] = useState<Rec[] | undefined>(undefined);
  const snapshot = useConnectionState().hello?.snapshot?.presence;
  useGatewayEvent("presence.changed", (payload) => setLive(presenceList(payload)));
  // A reply that left the gateway before the change but arrives after its event would put
  // the older list back (`setLive(undefined)` below): the list is read again after it.
  useReloadOnEvent("presence.changed", rpc.reload, PRESENCE_RELOAD_MS);
  useEffect(() => setLive(undefined), [rpc.data]);
  const entries = live ?? (rpc.data !== undefined ? presenceList(rpc.data) : presenceList(snapshot));
  const myConn = connection.hello?.server?.connId;
  return (
    <Section title="Connected clients" testid="overview-presence" actions={<Badge tone="accent">{entries.length}</Badge>}>
      <ErrorNote error={rpc.error} />
      {entries.length ? (
        <div class="table-wrap">
          <table data-testid="presence-table">
            <thead>
              <tr>
                <th scope="col">Client</th>
                <th scope="col">Role</th>
                <th scope="col">Address</th>
                <th scope="col">Since</th>
                <th scope="col">Last seen</th>
              </tr>
            </thead>
            <tbody>
              {entries.map((p, i) => {
                const client = isRec(p.client) ? p.client : {};
                const name = String(client.displayName ?? client.id ?? p.key ?? "client");
                return (
                  <tr key={String(p.key ?? p.connId ?? i)} data-testid="presence-row">
                    <td>
                      {name}
                      {p.connId === myConn ? <Badge tone="accent">you</Badge> : null}
                      <div class="muted small">
                        {[client.mode, client.platform, client.version].filter(Boolean).join(" · ")}
                      </div>
                    </td>
                    <td>{formatValue(p.role)}</td>
                    <td>{formatValue(p.ip)}</td>
                    <td>{formatAgo(p.since)}</td>
                    <td>{typeof p.lastSeenMs === "number" && p.lastSeenMs < 1e11 ? `${formatDuration(p.lastSeenMs)} ago` : formatAgo(p.lastSeenMs)}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      ) : (
        <Empty>No presence entries.</Empty>
      )}
    </Section>
  );
}

export function OverviewPage() {
  return (
    <div class="page grid-2">
      <HealthCard />
      <StatusCard />
      <PresenceCard />
    </div>
  );
}
