/** The agent form's draft and the params it turns into. Pure. */

export interface Agent {
  id: string;
  name?: string;
  model?: string;
  [key: string]: unknown;
}

/** `agents.list` result. */
export interface AgentsList {
  defaultId?: string;
  agents: Agent[];
}

/** One entry of `sessions.list`. */
export interface SessionEntry {
  key: string;
  agentId?: string;
  label?: string;
  updatedAt?: unknown;
  lastMessage?: unknown;
}

export interface AgentDraft {
  id: string;
  name: string;
  model: string;
  instructions: string;
  tools: string;
}

export const EMPTY_DRAFT: AgentDraft = { id: "", name: "", model: "", instructions: "", tools: "" };

export function draftOf(agent: Agent): AgentDraft {
  return {
    id: agent.id,
    name: agent.name ?? "",
    model: agent.model ?? "",
    instructions: typeof agent.instructions === "string" ? agent.instructions : "",
    tools: Array.isArray(agent.tools) ? agent.tools.join(", ") : "",
  };
}

/** The fields of a create/update call; empty optional fields are left out (or cleared). */
export function agentFields(d: AgentDraft, forUpdate: boolean): Record<string, unknown> {
  const out: Record<string, unknown> = { name: d.name.trim() };
  const opt = (key: string, value: string) => {
    if (value.trim()) out[key] = value.trim();
    else if (forUpdate) out[key] = null;
  };
  opt("model", d.model);
  if (d.instructions.trim() || forUpdate) out.instructions = d.instructions.trim() || null;
  // An empty allowlist would allow no tool at all (runtime: `[]` = none, null = every tool
  // the policy allows); an emptied field means "no restriction", as on create.
  const tools = d.tools.split(/[,\s]+/).filter(Boolean);
  if (tools.length) out.tools = tools;
  else if (forUpdate) out.tools = null;
  return out;
}

/** Only what the operator changed, so an update never clears a field by accident. */
export function changedFields(before: AgentDraft, after: AgentDraft): Record<string, unknown> {
  const a = agentFields(before, true);
  const b = agentFields(after, true);
  return Object.fromEntries(Object.entries(b).filter(([k, v]) => JSON.stringify(a[k]) !== JSON.stringify(v)));
}

