import { describe, expect, it } from "vitest";
import { parseInline, parseMarkdown, safeHref } from "./parse";

describe("parseInline", () => {
  it("reads emphasis, strong, code and escapes", () => {
    expect(parseInline("a **b** *c* `d*e` \\*f")).toEqual([
      { type: "text", text: "a " },
      { type: "strong", children: [{ type: "text", text: "b" }] },
      { type: "text", text: " " },
      { type: "em", children: [{ type: "text", text: "c" }] },
      { type: "text", text: " " },
      { type: "code", text: "d*e" },
      { type: "text", text: " *f" },
    ]);
  });

  it("leaves snake_case and lone stars alone", () => {
    expect(parseInline("snake_case_name and 2 * 3")).toEqual([
      { type: "text", text: "snake_case_name and 2 * 3" },
    ]);
  });

  it("keeps HTML as text: the tree has no markup node", () => {
    expect(parseInline('<img src=x onerror="alert(1)">')).toEqual([
      { type: "text", text: '<img src=x onerror="alert(1)">' },
    ]);
  });

  it("links only safe targets", () => {
    expect(parseInline("[ok](https://example.org/a)")).toEqual([
      { type: "link", href: "https://example.org/a", children: [{ type: "text", text: "ok" }] },
    ]);
    expect(parseInline("[bad](javascript:alert(1))")).toEqual([{ type: "text", text: "bad" }]);
    expect(parseInline("[bad](data:text/html,x)")).toEqual([{ type: "text", text: "bad" }]);
  });

  it("autolinks bare URLs without trailing punctuation", () => {
    expect(parseInline("see https://example.org/x.")).toEqual([
      { type: "text", text: "see " },
      { type: "link", href: "https://example.org/x", children: [{ type: "text", text: "https://example.org/x" }] },
      { type: "text", text: "." },
    ]);
  });

  it("turns newlines into breaks", () => {
    expect(parseInline("a\nb")).toEqual([{ type: "text", text: "a" }, { type: "br" }, { type: "text", text: "b" }]);
  });
});

describe("parseMarkdown", () => {
  it("reads headings, paragraphs, fenced code and lists", () => {
    const blocks = parseMarkdown("# Title\n\nHello\nworld\n\n```py\nprint('<b>')\n```\n- one\n- two\n\n3. three\n4. four");
    expect(blocks).toEqual([
      { type: "h", level: 1, children: [{ type: "text", text: "Title" }] },
      { type: "p", children: [{ type: "text", text: "Hello" }, { type: "br" }, { type: "text", text: "world" }] },
      { type: "code", lang: "py", text: "print('<b>')" },
      { type: "list", ordered: false, start: 1, items: [[{ type: "text", text: "one" }], [{ type: "text", text: "two" }]] },
      { type: "list", ordered: true, start: 3, items: [[{ type: "text", text: "three" }], [{ type: "text", text: "four" }]] },
    ]);
  });

  it("reads quotes and rules, and an unclosed fence runs to the end", () => {
    expect(parseMarkdown("> quoted\n\n---\n```\ncode")).toEqual([
      { type: "quote", children: [{ type: "p", children: [{ type: "text", text: "quoted" }] }] },
      { type: "hr" },
      { type: "code", lang: "", text: "code" },
    ]);
  });
});

describe("partial input (streaming)", () => {
  it("never throws on any prefix of a message", () => {
    const sample =
      "# Title\nSee https://example.org/a_(b) and [x](https://y.z/(q)) **bold _em_ `code`** \\*\n\n" +
      "```js\nlet a = `b`;\n```\n> quote\n1. one\n   more\n- [link](javascript:x) ~~~\n***\nhttp:// https:/";
    for (let i = 0; i <= sample.length; i++) {
      expect(() => parseMarkdown(sample.slice(0, i))).not.toThrow();
    }
  });

  it("leaves an unfinished URL as text", () => {
    expect(parseInline("go to https://")).toEqual([{ type: "text", text: "go to https://" }]);
  });
});

describe("safeHref", () => {
  it("allows http(s) and mailto only", () => {
    expect(safeHref(" https://a.b/c ")).toBe("https://a.b/c");
    expect(safeHref("mailto:x@y.z")).toBe("mailto:x@y.z");
    expect(safeHref("JaVaScRiPt:alert(1)")).toBeUndefined();
    expect(safeHref("/relative")).toBeUndefined();
    expect(safeHref('https://a.b/"onmouseover')).toBeUndefined();
  });
});
