/**
 * What the Connect page remembers in localStorage: the gateway URL, the auth mode and,
 * when the operator asks for it, the token. Passwords are never stored. The device token
 * the gateway issues after pairing is kept separately and used when no secret is given.
 */

export type AuthMode = "token" | "password";

export interface Settings {
  url: string;
  authMode: AuthMode;
  /** Stored only when `remember` is set. */
  token: string;
  remember: boolean;
}

const SETTINGS_KEY = "aisopod.ui.settings";
const DEVICE_TOKEN_KEY = "aisopod.ui.deviceToken";

/** The gateway's WebSocket on the page's own origin: Traefik routes `/ws`. */
export function defaultGatewayUrl(loc: Pick<Location, "protocol" | "host"> = location): string {
  return `${loc.protocol === "https:" ? "wss" : "ws"}://${loc.host}/ws`;
}

function storage(): Storage | undefined {
  try {
    return globalThis.localStorage;
  } catch {
    return undefined; // Blocked storage (privacy settings): remember nothing.
  }
}

export function loadSettings(): Settings {
  const fallback: Settings = { url: defaultGatewayUrl(), authMode: "token", token: "", remember: true };
  const raw = storage()?.getItem(SETTINGS_KEY);
  if (!raw) return fallback;
  try {
    const parsed = JSON.parse(raw) as Partial<Settings>;
    return {
      url: typeof parsed.url === "string" && parsed.url ? parsed.url : fallback.url,
      authMode: parsed.authMode === "password" ? "password" : "token",
      token: typeof parsed.token === "string" ? parsed.token : "",
      remember: parsed.remember !== false,
    };
  } catch {
    return fallback;
  }
}

export function saveSettings(settings: Settings): void {
  const stored = { ...settings, token: settings.remember ? settings.token : "" };
  storage()?.setItem(SETTINGS_KEY, JSON.stringify(stored));
}

export function loadDeviceToken(): string {
  return storage()?.getItem(DEVICE_TOKEN_KEY) ?? "";
}

export function saveDeviceToken(token: string): void {
  if (token) storage()?.setItem(DEVICE_TOKEN_KEY, token);
  else storage()?.removeItem(DEVICE_TOKEN_KEY);
}
