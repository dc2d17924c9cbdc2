/**
 * A small Markdown subset parsed to a tree, never to HTML: the renderer turns the tree into
 * DOM nodes, so nothing in a message can become markup or script. Links keep only
 * http(s) and mailto targets.
 *
 * Blocks: paragraphs, ATX headings, fenced code, bullet and numbered lists, block quotes,
 * thematic breaks. Inline: code spans, **strong**, *emphasis*, [links](url), bare URLs,
 * backslash escapes, hard line breaks (every newline inside a paragraph, as chat expects).
 */

export type Inline =
  | { type: "text"; text: string }
  | { type: "code"; text: string }
  | { type: "strong"; children: Inline[] }
  | { type: "em"; children: Inline[] }
  | { type: "link"; href: string; children: Inline[] }
  | { type: "br" };

export type Block =
  | { type: "p"; children: Inline[] }
  | { type: "h"; level: number; children: Inline[] }
  | { type: "code"; lang: string; text: string }
  | { type: "list"; ordered: boolean; start: number; items: Inline[][] }
  | { type: "quote"; children: Block[] }
  | { type: "hr" };

const ESCAPABLE = "\\`*_{}[]()#+-.!>~|";

/** The link target if it is safe to follow, else undefined. */
export function safeHref(raw: string): string | undefined {
  const href = raw.trim();
  return /^(https?:\/\/|mailto:)/i.test(href) && !/[\s<>"]/.test(href) ? href : undefined;
}

function pushText(out: Inline[], text: string): void {
  if (!text) return;
  const last = out[out.length - 1];
  if (last?.type === "text") last.text += text;
  else out.push({ type: "text", text });
}

/** Index of the closing delimiter `delim` at or after `from` that is not escaped. */
function findClose(s: string, delim: string, from: number): number {
  for (let i = from; i <= s.length - delim.length; i++) {
    if (s[i] === "\\") {
      i++;
      continue;
    }
    if (s.startsWith(delim, i)) return i;
  }
  return -1;
}

/** Index of the `)` closing the `(` at `open`, counting nested pairs; -1 if none. */
function matchingParen(s: string, open: number): number {
  let depth = 0;
  for (let i = open; i < s.length; i++) {
    if (s[i] === "(") depth++;
    else if (s[i] === ")" && --depth === 0) return i;
    else if (s[i] === "\n") return -1;
  }
  return -1;
}

export function parseInline(s: string): Inline[] {
  const out: Inline[] = [];
  let i = 0;
  while (i < s.length) {
    const ch = s[i]!;
    if (ch === "\\" && i + 1 < s.length && ESCAPABLE.includes(s[i + 1]!)) {
      pushText(out, s[i + 1]!);
      i += 2;
      continue;
    }
    if (ch === "\n") {
      out.push({ type: "br" });
      i++;
      continue;
    }
    if (ch === "`") {
      let ticks = 1;
      while (s[i + ticks] === "`") ticks++;
      const fence = "`".repeat(ticks);
      const end = s.indexOf(fence, i + ticks);
      if (end > 0) {
        const body = s.slice(i + ticks, end);
        const trimmed = body.length > 1 && body.startsWith(" ") && body.endsWith(" ") ? body.slice(1, -1) : body;
        out.push({ type: "code", text: trimmed.replace(/\n/g, " ") });
        i = end + ticks;
        continue;
      }
      pushText(out, fence);
      i += ticks;
      continue;
    }
    if ((ch === "*" || ch === "_") && s[i + 1] === ch) {
      const delim = ch + ch;
      const end = findClose(s, delim, i + 2);
      if (end > i + 2 && s[i + 2] !== " ") {
        out.push({ type: "strong", children: parseInline(s.slice(i + 2, end)) });
        i = end + 2;
        continue;
      }
    }
    if (ch === "*" || ch === "_") {
      // `_` inside a word (snake_case) is not emphasis.
      const wordBefore = ch === "_" && i > 0 && /\w/.test(s[i - 1]!);
      const end = findClose(s, ch, i + 1);
      if (!wordBefore && end > i + 1 && s[i + 1] !== " " && !(ch === "_" && /\w/.test(s[end + 1] ?? ""))) {
        out.push({ type: "em", children: parseInline(s.slice(i + 1, end)) });
        i = end + 1;
        continue;
      }
    }
    if (ch === "[") {
      const close = findClose(s, "]", i + 1);
      if (close > i && s[close + 1] === "(") {
        const paren = matchingParen(s, close + 1);
        if (paren > 0) {
          const label = parseInline(s.slice(i + 1, close));
          const href = safeHref(s.slice(close + 2, paren));
          if (href) out.push({ type: "link", href, children: label });
          else for (const node of label) node.type === "text" ? pushText(out, node.text) : out.push(node);
          i = paren + 1;
          continue;
        }
      }
    }
    if (ch === "h" || ch === "H") {
      // Streaming text may stop anywhere ("https://"): only a URL with a host is a link.
      const match = /^https?:\/\/[^\s<>"]+/i.exec(s.slice(i, i + 2048));
      const url = match?.[0].replace(/[.,;:!?)\]'"]+$/, "");
      if (url && /^https?:\/\/[^/?#]/i.test(url)) {
        out.push({ type: "link", href: url, children: [{ type: "text", text: url }] });
        i += url.length;
        continue;
      }
    }
    pushText(out, ch);
    i++;
  }
  return out;
}

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([\w+-]*)/;
const HEADING = /^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
const HR = /^ {0,3}([-*_])(\s*\1){2,}\s*$/;
const BULLET = /^ {0,3}[-*+]\s+(.*)$/;
const ORDERED = /^ {0,3}(\d{1,9})[.)]\s+(.*)$/;
const QUOTE = /^ {0,3}>\s?(.*)$/;

export function parseMarkdown(source: string): Block[] {
  const lines = source.replace(/\r\n?/g, "\n").split("\n");
  const blocks: Block[] = [];
  let para: string[] = [];
  const flush = () => {
    if (para.length) blocks.push({ type: "p", children: parseInline(para.join("\n")) });
    para = [];
  };

  let i = 0;
  while (i < lines.length) {
    const line = lines[i]!;
    const fence = FENCE.exec(line);
    if (fence) {
      flush();
      const marker = fence[1]!;
      const body: string[] = [];
      i++;
      while (i < lines.length && !lines[i]!.trimStart().startsWith(marker)) body.push(lines[i++]!);
      i++; // closing fence (or end of text)
      blocks.push({ type: "code", lang: fence[2] ?? "", text: body.join("\n") });
      continue;
    }
    if (!line.trim()) {
      flush();
      i++;
      continue;
    }
    const heading = HEADING.exec(line);
    if (heading) {
      flush();
      blocks.push({ type: "h", level: heading[1]!.length, children: parseInline(heading[2]!) });
      i++;
      continue;
    }
    if (HR.test(line)) {
      flush();
      blocks.push({ type: "hr" });
      i++;
      continue;
    }
    if (QUOTE.test(line)) {
      flush();
      const inner: string[] = [];
      while (i < lines.length && QUOTE.test(lines[i]!)) inner.push(QUOTE.exec(lines[i++]!)![1]!);
      blocks.push({ type: "quote", children: parseMarkdown(inner.join("\n")) });
      continue;
    }
    const bullet = BULLET.exec(line);
    const ordered = ORDERED.exec(line);
    if (bullet || ordered) {
      flush();
      const isOrdered = !bullet;
      const pattern = isOrdered ? ORDERED : BULLET;
      const items: string[] = [];
      while (i < lines.length) {
        const current = lines[i]!;
        const m = pattern.exec(current);
        if (m) {
          items.push(isOrdered ? m[2]! : m[1]!);
        } else if (items.length && /^\s{2,}\S/.test(current)) {
          items[items.length - 1] += "\n" + current.trim(); // continuation line
        } else {
          break;
        }
        i++;
      }
      blocks.push({
        type: "list",
        ordered: isOrdered,
        start: ordered ? Number(ordered[1]) : 1,
        items: items.map(parseInline),
      });
      continue;
    }
    para.push(line);
    i++;
  }
  flush();
  return blocks;
}
