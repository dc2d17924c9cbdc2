/**
 * The one gateway connection of the app. Pages talk to it, never to a GatewayClient, so a
 * reconnect with new credentials (a new client) keeps every page's event listeners.
 */

import { GatewayClient, type EventListener, type RequestOptions } from "../gateway/client";
import { browserDevice, type DeviceIdentity } from "../gateway/device";
import { GatewayError } from "../gateway/errors";
import type { AuthCredential, ConnectionState, Hello } from "../gateway/types";
import { saveDeviceToken } from "./settings";
import { Store } from "./store";
import { APP_VERSION } from "./version";

/** Everything the Control UI may do; the gateway grants what the credential allows. */
export const UI_SCOPES = [
  "operator.admin",
  "operator.read",
  "operator.write",
  "operator.approvals",
  "operator.pairing",
] as const;

export const CLIENT_ID = "aisopod-control-ui";

function randomId(): string {
  const bytes = new Uint8Array(8);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export class Connection {
  readonly state = new Store<ConnectionState>({ status: "idle", attempt: 0 });
  /** The browser's device identity: undefined while checking, null when unavailable. */
  readonly device = new Store<DeviceIdentity | null | undefined>(undefined);

  private client: GatewayClient | undefined;
  private detach: (() => void)[] = [];
  private readonly listeners = new Map<string, Set<EventListener>>();
  private readonly refetchers = new Set<() => void>();
  private readonly instanceId = randomId();

  constructor() {
    void browserDevice().then((signer) => this.device.set(signer ? signer.identity : null));
  }

  get hello(): Hello | undefined {
    return this.state.get().hello;
  }

  /** Scopes the gateway granted (empty until `hello`). */
  get scopes(): readonly string[] {
    return this.hello?.auth?.scopes ?? [];
  }

  hasScope(scope: string): boolean {
    const scopes = this.scopes;
    if (scopes.includes("operator.admin") || scopes.includes(scope)) return true;
    return scope === "operator.read" && scopes.includes("operator.write");
  }

  connect(url: string, auth: AuthCredential | undefined): void {
    this.disconnect();
    const client = new GatewayClient({
      url,
      client: {
        id: CLIENT_ID,
        version: APP_VERSION,
        platform: "web",
        mode: "ui",
        displayName: "Control UI",
        instanceId: this.instanceId,
      },
      role: "operator",
      scopes: UI_SCOPES,
      ...(auth ? { auth } : {}),
      device: browserDevice,
    });
    this.client = client;
    this.detach = [
      client.on("state", (s) => this.state.set(s)),
      client.on("deviceToken", (token) => saveDeviceToken(token)),
      client.on("refetch", () => {
        for (const fn of [...this.refetchers]) fn();
      }),
      client.onEvent("*", (payload, meta) => {
        for (const key of [meta.name, "*"]) {
          for (const fn of [...(this.listeners.get(key) ?? [])]) fn(payload, meta);
        }
      }),
    ];
    client.start();
  }

  disconnect(): void {
    for (const off of this.detach) off();
    this.detach = [];
    this.client?.stop();
    this.client = undefined;
    this.state.set({ status: "idle", attempt: 0 });
  }

  retryNow(): void {
    this.client?.retryNow();
  }

  request<T = unknown>(method: string, params: unknown = {}, options?: RequestOptions): Promise<T> {
    if (!this.client) return Promise.reject(GatewayError.disconnected("not connected to the gateway"));
    return this.client.request<T>(method, params, options);
  }

  /** Listen to a server event by name (or `"*"`), across reconnects. */
  onEvent(name: string, listener: EventListener): () => void {
    let set = this.listeners.get(name);
    if (!set) {
      set = new Set();
      this.listeners.set(name, set);
    }
    set.add(listener);
    return () => set.delete(listener);
  }

  /** Called when events were missed and local state should be reloaded. */
  onRefetch(fn: () => void): () => void {
    this.refetchers.add(fn);
    return () => this.refetchers.delete(fn);
  }
}

export const connection = new Connection();
