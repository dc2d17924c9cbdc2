/**
 * Form fields derived from the config's JSON Schema (pydantic output: `$defs` + `$ref`,
 * `anyOf [X, null]` for optionals). Only simple leaves become form fields; objects are
 * walked for their properties, anything else is left to the JSON editor. Pure.
 */

export type FieldKind = "string" | "secret" | "number" | "integer" | "boolean" | "enum";

export interface FormField {
  path: string[];
  label: string;
  kind: FieldKind;
  nullable: boolean;
  options?: (string | number)[];
  description?: string;
}

export type JsonSchema = Record<string, unknown>;

const isRec = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/** Follow a local `$ref` (`#/$defs/X`, `#/definitions/X`) and single-entry `allOf`. */
export function resolveRef(root: JsonSchema, node: JsonSchema, depth = 0): JsonSchema {
  if (depth > 16) return node;
  if (typeof node.$ref === "string" && node.$ref.startsWith("#/")) {
    let target: unknown = root;
    for (const part of node.$ref.slice(2).split("/")) {
      target = isRec(target) ? target[part.replace(/~1/g, "/").replace(/~0/g, "~")] : undefined;
    }
    if (!isRec(target)) return node;
    const { $ref: _ref, ...rest } = node;
    return resolveRef(root, { ...target, ...rest }, depth + 1);
  }
  if (Array.isArray(node.allOf) && node.allOf.length === 1 && isRec(node.allOf[0])) {
    const { allOf: _all, ...rest } = node;
    return resolveRef(root, { ...node.allOf[0], ...rest }, depth + 1);
  }
  return node;
}

/** The schema without its `null` alternative, and whether null is allowed. */
function unwrapNullable(root: JsonSchema, node: JsonSchema): { schema: JsonSchema; nullable: boolean } {
  const resolved = resolveRef(root, node);
  const alts = resolved.anyOf ?? resolved.oneOf;
  if (Array.isArray(alts)) {
    const nonNull = alts.filter((a) => !(isRec(a) && a.type === "null"));
    if (nonNull.length === 1 && isRec(nonNull[0])) {
      const { anyOf: _a, oneOf: _o, ...rest } = resolved;
      return { schema: resolveRef(root, { ...nonNull[0], ...rest }), nullable: nonNull.length < alts.length };
    }
  }
  if (Array.isArray(resolved.type)) {
    const types = resolved.type.filter((t) => t !== "null");
    if (types.length === 1) return { schema: { ...resolved, type: types[0] }, nullable: types.length < resolved.type.length };
  }
  return { schema: resolved, nullable: false };
}

function leafKind(schema: JsonSchema, name: string): FieldKind | undefined {
  if (Array.isArray(schema.enum) && schema.enum.every((v) => typeof v === "string" || typeof v === "number")) return "enum";
  if (schema.const !== undefined) return undefined;
  switch (schema.type) {
    case "string":
      return schema.writeOnly === true || schema.format === "password" || /secret|token|password|api_?key/i.test(name)
        ? "secret"
        : "string";
    case "number":
      return "number";
    case "integer":
      return "integer";
    case "boolean":
      return "boolean";
    default:
      return undefined;
  }
}

/**
 * A field's label: the schema's `title` when someone wrote one, else the key in words.
 * Pydantic derives a title from the key when none is given (`handshakeTimeoutMs` →
 * "Handshaketimeoutms"); that one reads better rebuilt from the camelCase key, with a
 * trailing unit kept apart: "Handshake timeout (ms)".
 */
export function fieldLabel(name: string, title: unknown): string {
  const squash = (v: string) => v.replace(/[^a-z0-9]/gi, "").toLowerCase();
  if (typeof title === "string" && title.trim() && (/\s/.test(title.trim()) || squash(title) !== squash(name))) return title;
  const words = name
    .replace(/([a-z0-9])([A-Z])/g, "$1 $2")
    .replace(/([A-Z]+)([A-Z][a-z])/g, "$1 $2")
    .replace(/[_-]+/g, " ")
    .trim()
    .toLowerCase()
    .split(/\s+/);
  const unit = words.length > 1 && ["ms", "s", "bytes"].includes(words[words.length - 1]!) ? words.pop() : undefined;
  const text = words.join(" ");
  const label = text ? text[0]!.toUpperCase() + text.slice(1) : name;
  return unit ? `${label} (${unit})` : label;
}

export function formFields(root: JsonSchema, maxDepth = 4): FormField[] {
  const fields: FormField[] = [];
  const walk = (node: JsonSchema, path: string[], depth: number) => {
    const { schema } = unwrapNullable(root, node);
    const props = schema.properties;
    if (!isRec(props) || depth > maxDepth) return;
    for (const [name, raw] of Object.entries(props)) {
      if (!isRec(raw)) continue;
      const { schema: child, nullable } = unwrapNullable(root, raw);
      const childPath = [...path, name];
      const kind = leafKind(child, name);
      if (kind) {
        const field: FormField = {
          path: childPath,
          label: fieldLabel(name, child.title),
          kind,
          nullable,
        };
        if (kind === "enum") field.options = child.enum as (string | number)[];
        if (typeof child.description === "string") field.description = child.description;
        fields.push(field);
      } else if (isRec(child.properties)) {
        walk(child, childPath, depth + 1);
      }
    }
  };
  walk(root, [], 0);
  return fields;
}

export function getPath(value: unknown, path: readonly string[]): unknown {
  let node = value;
  for (const key of path) node = isRec(node) ? node[key] : undefined;
  return node;
}

/** `base` with `value` at `path`, creating objects on the way; `base` is not changed. */
export function setPath(base: unknown, path: readonly string[], value: unknown): Record<string, unknown> {
  const root: Record<string, unknown> = isRec(base) ? { ...base } : {};
  let node = root;
  path.forEach((key, i) => {
    if (i === path.length - 1) {
      node[key] = value;
    } else {
      const next = isRec(node[key]) ? { ...(node[key] as Record<string, unknown>) } : {};
      node[key] = next;
      node = next;
    }
  });
  return root;
}

/** The RFC 7396 merge patch that turns `from` into `to` (null removes, arrays replace). */
export function mergePatch(from: unknown, to: unknown): unknown {
  if (!isRec(from) || !isRec(to)) return to;
  const patch: Record<string, unknown> = {};
  for (const key of Object.keys(from)) if (!(key in to)) patch[key] = null;
  for (const [key, value] of Object.entries(to)) {
    if (!(key in from)) {
      patch[key] = value;
    } else if (JSON.stringify(from[key]) !== JSON.stringify(value)) {
      patch[key] = isRec(from[key]) && isRec(value) ? mergePatch(from[key], value) : value;
    }
  }
  return patch;
}

/** Apply an RFC 7396 merge patch (to preview what the server will store). */
export function applyMergePatch(target: unknown, patch: unknown): unknown {
  if (!isRec(patch)) return patch;
  const out: Record<string, unknown> = isRec(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete out[key];
    else out[key] = applyMergePatch(out[key], value);
  }
  return out;
}

/** Parse a form input's text as the field's type; an empty optional field is null. */
export function parseFieldInput(field: FormField, text: string): { value: unknown } | { error: string } {
  const trimmed = text.trim();
  if (trimmed === "" && field.nullable) return { value: null };
  switch (field.kind) {
    case "integer": {
      if (!/^-?\d+$/.test(trimmed)) return { error: "an integer" };
      return { value: Number(trimmed) };
    }
    case "number": {
      const n = Number(trimmed);
      return trimmed === "" || Number.isNaN(n) ? { error: "a number" } : { value: n };
    }
    case "enum": {
      const match = field.options?.find((o) => String(o) === text);
      return match === undefined ? { error: "one of the options" } : { value: match };
    }
    case "boolean":
      return { value: text === "true" };
    default:
      return { value: text };
  }
}
