"""`exec`: run a shell command on a node, after an operator approves it when policy asks.

Flow: the node's exec-approval policy (its own, `exec.approvals.node.get`, else the
gateway-wide `exec.approvals.get`) decides whether to ask; if so an
approval request is broadcast (`exec.approval.requested`, carrying `runId`/`toolCallId`
when an agent asked) and the call waits — on any replica the decision is taken, the KV
watch wakes it. `deny` or expiry fails the call. Once allowed, the command goes to the
node as `node.invoke` command `system.run` with params `{command: argv[], rawCommand,
cwd?, timeoutMs}` (argv is `["/bin/sh", "-lc", command]` unless `argv` is given). Without
`nodeId` the first connected node declaring `system.run` is used.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from aisopod.catalogue.approvals import ExecApprovalRequestParams
from aisopod.errors import AisopodError
from aisopod.execpolicy import EXEC_COMMAND
from aisopod_runtime.tools.builtin import Args, invoke_node
from aisopod_runtime.tools.registry import Tool, ToolContext, ToolError

NODE_COMMAND = EXEC_COMMAND


class ExecArgs(Args):
    command: str = Field(min_length=1, max_length=65_536, description="a shell command line")
    argv: list[str] | None = Field(None, max_length=1024, description="exact argv; no shell")
    cwd: str | None = Field(None, max_length=4096)
    node_id: str | None = Field(None, pattern=r"^[A-Za-z0-9_:-]{1,200}$")
    timeout_ms: int = Field(60_000, ge=100, le=3_600_000)


async def _pick_node(ctx: ToolContext) -> str:
    try:
        listing = await ctx.services.host.bus.call("node.list", {}, principal=ctx.principal)
    except AisopodError as exc:
        raise ToolError(f"no node given and node.list failed: {exc.message}") from None
    for node in listing.get("nodes", []):
        if node.get("connected") and NODE_COMMAND in (node.get("commands") or []):
            return str(node["nodeId"])
    raise ToolError(f"no connected node can run commands ({NODE_COMMAND})")


async def exec_command(args: ExecArgs, ctx: ToolContext) -> Any:
    approvals = ctx.services.approvals
    approval: dict[str, Any] = {"required": False}
    # The node first: its own exec policy, when it has one, decides instead of the gateway's.
    node_id = args.node_id or await _pick_node(ctx)
    if await approvals.needs_approval(args.command, args.argv, node_id):
        timeout_ms = ctx.services.config.tools.exec_approval_timeout_ms
        request = ExecApprovalRequestParams(
            command=args.command,
            argv=args.argv,
            cwd=args.cwd,
            node_id=node_id,
            agent_id=ctx.agent_id,
            session_key=ctx.session_key,
            timeout_ms=timeout_ms,
        )
        record = await approvals.request(
            request, ctx.principal.id, extra={"runId": ctx.run_id, "toolCallId": ctx.call_id}
        )
        decision = await approvals.wait(record["id"], timeout_ms / 1000 + 1)
        approval = {"required": True, "id": record["id"], "decision": decision}
        if decision not in ("allow-once", "allow-always"):
            raise ToolError(
                "the operator denied this command"
                if decision == "deny"
                else "no operator decided in time",
                approval=approval,
            )
    params: dict[str, Any] = {
        "command": args.argv or ["/bin/sh", "-lc", args.command],
        "rawCommand": args.command,
        "timeoutMs": args.timeout_ms,
    }
    if args.cwd:
        params["cwd"] = args.cwd
    try:
        result = await invoke_node(ctx, node_id, NODE_COMMAND, params, args.timeout_ms)
    except ToolError as exc:
        exc.data["approval"] = approval
        raise
    return {"nodeId": node_id, "approval": approval, "result": result}


EXEC_TOOL = Tool(
    "exec",
    "Run a shell command on a connected node (an operator may have to approve it).",
    ExecArgs,
    exec_command,
    dangerous=True,
)
