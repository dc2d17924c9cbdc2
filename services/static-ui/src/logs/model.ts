/** Log lines from `logs.tail`, in whatever shape the services wrote them. Pure. */

export interface LogLine {
  key: string;
  ts?: number;
  level: string;
  service: string;
  message: string;
  extra?: Record<string, unknown>;
  raw?: string;
}

type Rec = Record<string, unknown>;
const isRec = (v: unknown): v is Rec => typeof v === "object" && v !== null && !Array.isArray(v);

const KNOWN = new Set(["ts", "time", "timestamp", "level", "levelname", "service", "logger", "msg", "message", "event", "seq"]);

function readTs(v: unknown): number | undefined {
  if (typeof v === "number") return v < 1e11 ? v * 1000 : v;
  if (typeof v === "string") {
    const t = Date.parse(v);
    return Number.isNaN(t) ? undefined : t;
  }
  return undefined;
}

export function readLine(raw: unknown, key: string): LogLine {
  let value = raw;
  if (typeof raw === "string") {
    try {
      value = JSON.parse(raw);
    } catch {
      return { key, level: "", service: "", message: raw, raw };
    }
  }
  if (!isRec(value)) return { key, level: "", service: "", message: String(raw), raw: String(raw) };
  const line: LogLine = {
    key,
    level: String(value.level ?? value.levelname ?? "").toLowerCase(),
    service: String(value.service ?? value.logger ?? ""),
    message: String(value.msg ?? value.message ?? value.event ?? ""),
  };
  const ts = readTs(value.ts ?? value.time ?? value.timestamp);
  if (ts !== undefined) line.ts = ts;
  const extra = Object.fromEntries(Object.entries(value).filter(([k]) => !KNOWN.has(k)));
  if (Object.keys(extra).length) line.extra = extra;
  return line;
}

/** Append a page of lines, keeping at most `max` (the oldest go first). */
export function appendLines(lines: LogLine[], page: unknown[], startKey: number, max: number): LogLine[] {
  const added = page.map((raw, i) => readLine(raw, String(startKey + i)));
  const all = lines.concat(added);
  return all.length > max ? all.slice(all.length - max) : all;
}
