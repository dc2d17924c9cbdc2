/** The agent files editor's model: rows, the save call and what a refusal means. Pure. */

import { GatewayError } from "../gateway/errors";

/** The names the gateway accepts, in the order they enter the system prompt. */
export const FILE_NAMES = ["AGENTS.md", "SOUL.md", "IDENTITY.md", "USER.md", "TOOLS.md", "MEMORY.md"] as const;
export const FILE_MAX_BYTES = 64 * 1024;

/** One entry of `agents.files.list` / `.get`. */
export interface AgentFile {
  name: string;
  missing: boolean;
  size?: number;
  revision?: number;
  hash?: string;
  updatedAt?: number;
  content?: string;
}

export function byteSize(text: string): number {
  return new TextEncoder().encode(text).length;
}

/** A list row's status: `412 B · rev 3`, or `not written` / `removed (rev 4)`. */
export function fileStatus(file: AgentFile): string {
  if (file.missing) return file.revision ? `removed (rev ${file.revision})` : "not written";
  return `${file.size ?? 0} B · rev ${file.revision ?? 0}`;
}

/**
 * The `agents.files.set` params for saving `content` over the file as it was loaded:
 * conditional on the loaded revision (0 for a file never written), so a change made
 * elsewhere meanwhile is refused rather than overwritten.
 */
export function saveParams(agentId: string, loaded: AgentFile, content: string): Record<string, unknown> {
  return { agentId, name: loaded.name, content, expectedRevision: loaded.revision ?? 0 };
}

/** Why the draft cannot be saved before asking the gateway, or undefined. */
export function draftProblem(content: string): string | undefined {
  const size = byteSize(content);
  return size > FILE_MAX_BYTES ? `${size} bytes: a file holds at most ${FILE_MAX_BYTES} (64 KiB).` : undefined;
}

/** The file changed since it was loaded (someone else saved it): its current revision. */
export function conflictRevision(error: GatewayError | undefined): number | undefined {
  if (!error || error.data.code !== "FILE_CHANGED") return undefined;
  const current = error.data.currentRevision;
  return typeof current === "number" ? current : undefined;
}

/** Whether the editor holds changes not saved yet. */
export function isDirty(loaded: AgentFile | undefined, draft: string): boolean {
  return draft !== (loaded?.content ?? "");
}
