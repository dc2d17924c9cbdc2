/** The frame around every page: navigation, page title, connection status. */

import type { ComponentChildren } from "preact";
import { useEffect, useState } from "preact/hooks";
import { pendingApprovals } from "../approvals/model";
import { approvals } from "../approvals/store";
import { connection } from "../app/connection";
import { useConnectionState } from "../app/hooks";
import { hrefFor } from "../app/router";
import { useStore } from "../app/store";
import { APP_VERSION } from "../app/version";
import type { ConnectionState } from "../gateway/types";
import { Icon } from "./icons";
import { shortId } from "./format";

export interface NavItem {
  path: string;
  label: string;
  icon: string;
}

const STATUS_TEXT: Record<ConnectionState["status"], string> = {
  idle: "Disconnected",
  connecting: "Connecting…",
  handshaking: "Signing in…",
  connected: "Connected",
  waiting: "Reconnecting…",
  pairing: "Awaiting pairing",
  failed: "Connection failed",
};

export function ConnectionPill() {
  const state = useConnectionState();
  const tone = state.status === "connected" ? "ok" : state.status === "failed" || state.status === "idle" ? "bad" : "warn";
  return (
    <a class={`pill pill-${tone}`} href={hrefFor("/connect")} data-testid="conn-status" data-status={state.status}>
      <span class="dot" aria-hidden="true" />
      {STATUS_TEXT[state.status]}
    </a>
  );
}

/** A strip under the header while the app is not connected, with the reason. */
function ConnectionBanner({ onConnectPage }: { onConnectPage: boolean }) {
  const state = useConnectionState();
  const [, tick] = useState(0);
  useEffect(() => {
    if (!state.nextRetryAt) return;
    const timer = setInterval(() => tick((n) => n + 1), 1000);
    return () => clearInterval(timer);
  }, [state.nextRetryAt]);
  if (state.status === "connected" || onConnectPage) return null;
  const wait = state.nextRetryAt ? Math.max(0, Math.ceil((state.nextRetryAt - Date.now()) / 1000)) : undefined;
  return (
    <div class="banner" role="status" data-testid="conn-banner">
      <span>
        {STATUS_TEXT[state.status]}
        {state.error ? ` — ${state.error.message}` : ""}
        {wait !== undefined && (state.status === "waiting" || state.status === "pairing") ? ` (retry in ${wait}s)` : ""}
      </span>
      {state.status === "waiting" || state.status === "pairing" ? (
        <button type="button" class="btn btn-ghost" data-testid="conn-retry" onClick={() => connection.retryNow()}>
          Retry now
        </button>
      ) : (
        <a class="btn btn-ghost" href={hrefFor("/connect")} data-testid="conn-goto-connect">
          Connect
        </a>
      )}
    </div>
  );
}

export function Shell(props: { nav: NavItem[]; current: string; title: string; children: ComponentChildren }) {
  const [open, setOpen] = useState(false);
  const device = useStore(connection.device);
  const list = useStore(approvals);
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), 5000);
    return () => clearInterval(timer);
  }, []);
  const pending = pendingApprovals(list, now).length;

  useEffect(() => setOpen(false), [props.current]);
  useEffect(() => {
    if (!open) return;
    const onKey = (e: KeyboardEvent) => e.key === "Escape" && setOpen(false);
    addEventListener("keydown", onKey);
    return () => removeEventListener("keydown", onKey);
  }, [open]);

  return (
    <div class="shell" data-nav-open={open ? "true" : "false"}>
      <a class="skip-link" href="#main" onClick={(e) => { e.preventDefault(); document.getElementById("main")?.focus(); }}>
        Skip to content
      </a>
      <aside class="sidebar" id="sidebar">
        <div class="brand">
          <span class="brand-mark" aria-hidden="true" />
          <span>aisopod</span>
        </div>
        <nav aria-label="Main">
          <ul>
            {props.nav.map((item) => (
              <li key={item.path}>
                <a
                  href={hrefFor(item.path)}
                  class="nav-link"
                  aria-current={props.current === item.path ? "page" : undefined}
                  data-testid={`nav-${item.path.slice(1)}`}
                >
                  <Icon name={item.icon} />
                  <span>{item.label}</span>
                  {item.path === "/approvals" && pending > 0 ? (
                    <span class="nav-count" data-testid="nav-approvals-count" aria-label={`${pending} pending`}>
                      {pending}
                    </span>
                  ) : null}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <div class="sidebar-foot">
          <div>Control UI {APP_VERSION}</div>
          <div data-testid="device-id" title={device?.id}>
            {device === undefined ? "device: checking…" : device ? `device ${shortId(device.id, 12)}` : "no device identity"}
          </div>
        </div>
      </aside>
      <button type="button" class="backdrop" aria-label="Close menu" tabIndex={-1} onClick={() => setOpen(false)} />
      <div class="main-col">
        <header class="topbar">
          <button
            type="button"
            class="btn btn-ghost menu-btn"
            aria-controls="sidebar"
            aria-expanded={open ? "true" : "false"}
            aria-label={open ? "Close menu" : "Open menu"}
            data-testid="nav-toggle"
            onClick={() => setOpen(!open)}
          >
            <Icon name={open ? "close" : "menu"} />
          </button>
          <h1 class="page-title">{props.title}</h1>
          <ConnectionPill />
        </header>
        <ConnectionBanner onConnectPage={props.current === "/connect"} />
        <main id="main" class="content" tabIndex={-1}>
          {props.children}
        </main>
      </div>
    </div>
  );
}
