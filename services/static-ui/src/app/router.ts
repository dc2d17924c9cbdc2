/** Hash routing: `#/chat?session=…`. The hash never reaches the server, so any path works. */

import { Store } from "./store";

export interface Route {
  path: string;
  query: URLSearchParams;
}

export function parseHash(hash: string): Route {
  const body = hash.replace(/^#/, "");
  const [rawPath = "", rawQuery = ""] = body.split("?", 2);
  const path = "/" + rawPath.replace(/^\/+/, "").replace(/\/+$/, "");
  return { path, query: new URLSearchParams(rawQuery) };
}

export function hrefFor(path: string, query?: Record<string, string | undefined>): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query ?? {})) if (value) params.set(key, value);
  const qs = params.toString();
  return `#${path}${qs ? `?${qs}` : ""}`;
}

export const route = new Store<Route>(parseHash(globalThis.location?.hash ?? ""));

globalThis.addEventListener?.("hashchange", () => route.set(parseHash(location.hash)));

export function navigate(path: string, query?: Record<string, string | undefined>): void {
  const href = hrefFor(path, query);
  if (location.hash === href) return;
  location.hash = href;
}
