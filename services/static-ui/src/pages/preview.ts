/** One-line previews of loosely shaped values for tables. */

import { messageText } from "../chat/model";

export function chatTextPreview(value: unknown, max = 120): string {
  const text = (typeof value === "string" ? value : messageText(value)).replace(/\s+/g, " ").trim();
  if (!text) return "—";
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}
