/** Display formatting for times, durations and loosely typed values. Pure. */

/** A timestamp (ms, seconds or ISO text) as local date and time; "—" when unknown. */
export function formatTime(value: unknown): string {
  const ms = toMs(value);
  if (ms === undefined) return "—";
  const d = new Date(ms);
  const sameDay = new Date().toDateString() === d.toDateString();
  return sameDay ? d.toLocaleTimeString() : d.toLocaleString();
}

export function toMs(value: unknown): number | undefined {
  if (typeof value === "number" && Number.isFinite(value)) {
    // Seconds since the epoch are below ~1e11 for the next few thousand years.
    return value < 1e11 ? value * 1000 : value;
  }
  if (typeof value === "string" && value) {
    const parsed = Date.parse(value);
    return Number.isNaN(parsed) ? undefined : parsed;
  }
  return undefined;
}

/** `1h 2m`, `3m 4s`, `5s`, `120 ms`. */
export function formatDuration(ms: unknown): string {
  if (typeof ms !== "number" || !Number.isFinite(ms) || ms < 0) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = Math.floor(ms / 1000);
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (d) return `${d}d ${h}h`;
  if (h) return `${h}h ${m}m`;
  if (m) return `${m}m ${sec}s`;
  return `${sec}s`;
}

/** How long ago, coarse: `just now`, `5m ago`, `2h ago`, `3d ago`, or `in 4m`. */
export function formatAgo(value: unknown, now = Date.now()): string {
  const ms = toMs(value);
  if (ms === undefined) return "—";
  const diff = now - ms;
  const abs = Math.abs(diff);
  if (abs < 10_000) return "just now";
  const unit = abs < 3_600_000 ? [60_000, "m"] : abs < 86_400_000 ? [3_600_000, "h"] : [86_400_000, "d"];
  const n = Math.max(1, Math.floor(abs / (unit[0] as number)));
  return diff >= 0 ? `${n}${unit[1]} ago` : `in ${n}${unit[1]}`;
}

/** Any value as short text for a table cell. */
export function formatValue(value: unknown): string {
  if (value === null || value === undefined) return "—";
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  if (Array.isArray(value) && value.every((v) => typeof v === "string" || typeof v === "number")) {
    return value.join(", ");
  }
  return JSON.stringify(value);
}

export function shortId(id: string, keep = 10): string {
  return id.length > keep + 1 ? `${id.slice(0, keep)}…` : id;
}

/** A wire key as a label: `uptimeMs` → `Uptime`, `activeSessions` → `Active sessions`. */
export function humanizeKey(key: string): string {
  const words = key
    .replace(/Ms$/, "")
    .replace(/([a-z0-9])([A-Z])/g, "$1 $2")
    .replace(/[_-]+/g, " ")
    .trim()
    .toLowerCase();
  return words ? words[0]!.toUpperCase() + words.slice(1) : key;
}
