/** Connect: gateway URL and credential, connection state, pairing, device identity. */

import { useEffect, useRef, useState } from "preact/hooks";
import { chooseAuth } from "../app/auth";
import { connection } from "../app/connection";
import { useConnectionState } from "../app/hooks";
import { navigate } from "../app/router";
import {
  defaultGatewayUrl,
  loadDeviceToken,
  loadSettings,
  saveDeviceToken,
  saveSettings,
  type AuthMode,
} from "../app/settings";
import { useStore } from "../app/store";
import { formatDuration } from "../components/format";
import { Badge, Button, ErrorNote, Field, Notice, Section } from "../components/ui";

/** Connect with what was saved, if there is a credential to use (called at start-up). */
export function autoConnect(): boolean {
  const settings = loadSettings();
  const auth = chooseAuth(settings.authMode, settings.authMode === "token" ? settings.token : "", loadDeviceToken());
  if (!auth) return false;
  connection.connect(settings.url, auth);
  return true;
}

export function ConnectPage() {
  const initial = loadSettings();
  const [url, setUrl] = useState(initial.url);
  const [mode, setMode] = useState<AuthMode>(initial.authMode);
  const [token, setToken] = useState(initial.token);
  const [password, setPassword] = useState("");
  const [remember, setRemember] = useState(initial.remember);
  const [hasDeviceToken, setHasDeviceToken] = useState(() => loadDeviceToken() !== "");
  const state = useConnectionState();
  const device = useStore(connection.device);
  const submitted = useRef(false);

  useEffect(() => {
    if (state.status === "connected") setHasDeviceToken(loadDeviceToken() !== "");
    if (state.status === "connected" && submitted.current) {
      submitted.current = false;
      navigate("/overview");
    }
  }, [state.status]);

  const onSubmit = (e: Event) => {
    e.preventDefault();
    const target = url.trim() || defaultGatewayUrl();
    saveSettings({ url: target, authMode: mode, token, remember });
    submitted.current = true;
    connection.connect(target, chooseAuth(mode, mode === "token" ? token : password, loadDeviceToken()));
  };

  const hello = state.hello;
  return (
    <div class="page page-connect">
      <Section title="Gateway" testid="connect-form-section">
        <form class="form" onSubmit={onSubmit} data-testid="connect-form">
          <Field label="Gateway WebSocket URL" id="connect-url" hint="Usually this page's own host at /ws.">
            <input
              id="connect-url"
              type="url"
              inputMode="url"
              value={url}
              onInput={(e) => setUrl(e.currentTarget.value)}
              data-testid="connect-url"
              aria-describedby="connect-url-hint"
              autocomplete="url"
              spellcheck={false}
            />
          </Field>
          <fieldset class="field">
            <legend>Sign in with</legend>
            <div class="segmented">
              <label>
                <input type="radio" name="mode" value="token" checked={mode === "token"} onChange={() => setMode("token")} data-testid="connect-mode-token" />
                Token
              </label>
              <label>
                <input type="radio" name="mode" value="password" checked={mode === "password"} onChange={() => setMode("password")} data-testid="connect-mode-password" />
                Password
              </label>
            </div>
          </fieldset>
          {mode === "token" ? (
            <Field label="Gateway token" id="connect-token" hint="Leave empty to use this device's paired token (or a gateway without auth).">
              <input
                id="connect-token"
                type="password"
                value={token}
                onInput={(e) => setToken(e.currentTarget.value)}
                data-testid="connect-token"
                aria-describedby="connect-token-hint"
                autocomplete="current-password"
                spellcheck={false}
              />
            </Field>
          ) : (
            <Field label="Password" id="connect-password" hint="Passwords are never stored by this page.">
              <input
                id="connect-password"
                type="password"
                value={password}
                onInput={(e) => setPassword(e.currentTarget.value)}
                data-testid="connect-password"
                aria-describedby="connect-password-hint"
                autocomplete="current-password"
              />
            </Field>
          )}
          <label class="check">
            <input type="checkbox" checked={remember} onChange={(e) => setRemember(e.currentTarget.checked)} data-testid="connect-remember" />
            Remember the token in this browser
          </label>
          <div class="row">
            <Button type="submit" variant="primary" testid="connect-submit" busy={state.status === "connecting" || state.status === "handshaking"}>
              {state.status === "connected" ? "Reconnect" : "Connect"}
            </Button>
            {state.status !== "idle" ? (
              <Button variant="ghost" testid="connect-disconnect" onClick={() => connection.disconnect()}>
                Disconnect
              </Button>
            ) : null}
          </div>
        </form>
      </Section>

      <Section title="Status" testid="connect-status-section">
        <p>
          <Badge tone={state.status === "connected" ? "ok" : state.status === "failed" ? "bad" : "warn"} testid="connect-state">
            {state.status}
          </Badge>
          {state.attempt > 0 ? <span class="muted"> attempt {state.attempt}</span> : null}
        </p>
        {state.status === "pairing" ? (
          <Notice kind="warn" testid="pairing-required">
            <p>
              <strong>This device must be approved.</strong> Ask an operator to approve pairing request{" "}
              <code data-testid="pairing-request-id">{state.pairingRequestId ?? "(id not given)"}</code> on the "Devices &amp; nodes" page
              (or with the CLI). This page retries automatically.
            </p>
            <Button testid="pairing-retry" onClick={() => connection.retryNow()}>
              Check now
            </Button>
          </Notice>
        ) : (
          <ErrorNote error={state.error} testid="connect-error" />
        )}
        {hello ? (
          <dl class="kv" data-testid="connect-hello">
            <dt>Server</dt>
            <dd>
              {hello.server?.version} · {hello.server?.instance}
            </dd>
            <dt>Connection</dt>
            <dd data-testid="conn-id">{hello.server?.connId}</dd>
            <dt>Signed in by</dt>
            <dd>
              {hello.auth?.method} as {hello.auth?.role}
            </dd>
            <dt>Scopes</dt>
            <dd data-testid="granted-scopes">
              {(hello.auth?.scopes ?? []).map((s) => (
                <Badge key={s} tone="accent">
                  {s}
                </Badge>
              ))}
            </dd>
            <dt>Gateway uptime</dt>
            <dd>{formatDuration(hello.snapshot?.uptimeMs)}</dd>
          </dl>
        ) : null}
      </Section>

      <Section title="This device" testid="connect-device-section">
        {device === undefined ? (
          <p class="muted">Checking for a device identity…</p>
        ) : device ? (
          <dl class="kv">
            <dt>Device id</dt>
            <dd>
              <code class="wrap" data-testid="device-id-full">
                {device.id}
              </code>
            </dd>
            <dt>Public key</dt>
            <dd>
              <code class="wrap">{device.publicKey}</code>
            </dd>
          </dl>
        ) : (
          <p class="muted" data-testid="device-unavailable">
            This browser offers no Ed25519 key storage here (it needs a secure context: https or localhost), so the UI
            connects without a device identity.
          </p>
        )}
        {hasDeviceToken ? (
          <div class="row">
            <span class="muted">A device token from the gateway is stored.</span>
            <Button
              variant="ghost"
              testid="forget-device-token"
              onClick={() => {
                saveDeviceToken("");
                setHasDeviceToken(false);
              }}
            >
              Forget it
            </Button>
          </div>
        ) : null}
      </Section>
    </div>
  );
}
