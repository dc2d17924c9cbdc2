/** Renders parsed Markdown as DOM nodes (never innerHTML): text stays text. */

import type { ComponentChildren } from "preact";
import { useMemo } from "preact/hooks";
import { parseMarkdown, type Block, type Inline } from "./parse";

function renderInline(nodes: Inline[]): ComponentChildren {
  return nodes.map((node, i) => {
    switch (node.type) {
      case "text":
        return node.text;
      case "br":
        return <br key={i} />;
      case "code":
        return <code key={i}>{node.text}</code>;
      case "strong":
        return <strong key={i}>{renderInline(node.children)}</strong>;
      case "em":
        return <em key={i}>{renderInline(node.children)}</em>;
      case "link":
        return (
          <a key={i} href={node.href} target="_blank" rel="noopener noreferrer nofollow">
            {renderInline(node.children)}
          </a>
        );
    }
  });
}

function renderBlocks(blocks: Block[]): ComponentChildren {
  return blocks.map((block, i) => {
    switch (block.type) {
      case "p":
        return <p key={i}>{renderInline(block.children)}</p>;
      case "h": {
        // Message headings sit inside the page's own outline: shift them down.
        const Tag = `h${Math.min(6, block.level + 2)}` as "h3";
        return <Tag key={i}>{renderInline(block.children)}</Tag>;
      }
      case "code":
        return (
          <pre key={i} data-lang={block.lang || undefined}>
            <code>{block.text}</code>
          </pre>
        );
      case "list":
        return block.ordered ? (
          <ol key={i} start={block.start}>
            {block.items.map((item, j) => (
              <li key={j}>{renderInline(item)}</li>
            ))}
          </ol>
        ) : (
          <ul key={i}>
            {block.items.map((item, j) => (
              <li key={j}>{renderInline(item)}</li>
            ))}
          </ul>
        );
      case "quote":
        return <blockquote key={i}>{renderBlocks(block.children)}</blockquote>;
      case "hr":
        return <hr key={i} />;
    }
  });
}

export function Markdown({ text }: { text: string }) {
  const blocks = useMemo((): Block[] => {
    try {
      return parseMarkdown(text);
    } catch {
      // A parser bug must never hide the message: fall back to plain text.
      return [{ type: "p", children: [{ type: "text", text }] }];
    }
  }, [text]);
  return <div class="md">{renderBlocks(blocks)}</div>;
}
