"""The verified identity of a caller, and its encoding into NATS headers.

Edges build a Principal after verification and send it with every NATS request; owners
rebuild it from the headers. Owners trust these headers only because NATS subject
permissions forbid anyone but the edges from publishing `rpc.>`.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from aisopod.scopes import Requirement, Role, allows

H_PRINCIPAL = "Aisopod-Principal"
H_ROLE = "Aisopod-Role"
H_SCOPES = "Aisopod-Scopes"
H_CONN = "Aisopod-Conn-Id"
H_IP = "Aisopod-Client-Ip"
H_DEVICE = "Aisopod-Device-Id"
H_AUTH_METHOD = "Aisopod-Auth-Method"
H_TRACE = "Aisopod-Trace-Id"
H_INSTANCE = "Aisopod-Instance"
H_WIRE = "Aisopod-Wire"  # the caller's wire format when not ours (e.g. "openclaw")
H_ORIGIN_CONN = "Aisopod-Origin-Conn"  # on events: the connection that caused them

# HTTP spellings of the above, which forwardAuth once set: now only ever stripped at the edge.
IDENTITY_HEADERS = (
    "X-Aisopod-Principal",
    "X-Aisopod-Role",
    "X-Aisopod-Scopes",
    "X-Aisopod-Auth-Method",
    "X-Aisopod-Device-Id",
    "X-Aisopod-Client-Ip",
)


class Principal(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    role: Role = Role.OPERATOR
    scopes: tuple[str, ...] = ()
    auth_method: str = "none"
    conn_id: str | None = None
    client_ip: str | None = None
    device_id: str | None = None
    trace_id: str | None = None
    node_id: str | None = Field(default=None, description="set for role=node connections")
    wire: str | None = Field(
        default=None, description="the connection's wire format when not JSON-RPC: openclaw"
    )

    def may(self, requirement: Requirement) -> bool:
        return allows(self.role, self.scopes, requirement)

    def to_headers(self) -> dict[str, str]:
        headers = {
            H_PRINCIPAL: self.id,
            H_ROLE: self.role.value,
            H_SCOPES: ",".join(self.scopes),
            H_AUTH_METHOD: self.auth_method,
        }
        for key, value in (
            (H_CONN, self.conn_id),
            (H_IP, self.client_ip),
            (H_DEVICE, self.device_id),
            (H_TRACE, self.trace_id),
            (H_WIRE, self.wire),
        ):
            if value:
                headers[key] = value
        return headers

    @classmethod
    def from_headers(cls, headers: dict[str, str] | None) -> Principal | None:
        """The principal a request carries, or None when it carries none."""
        if not headers or not headers.get(H_PRINCIPAL):
            return None
        scopes = tuple(s for s in headers.get(H_SCOPES, "").split(",") if s)
        role = headers.get(H_ROLE, Role.OPERATOR.value)
        return cls(
            id=headers[H_PRINCIPAL],
            role=Role(role) if role in Role._value2member_map_ else Role.OPERATOR,
            scopes=scopes,
            auth_method=headers.get(H_AUTH_METHOD, "none"),
            conn_id=headers.get(H_CONN) or None,
            client_ip=headers.get(H_IP) or None,
            device_id=headers.get(H_DEVICE) or None,
            trace_id=headers.get(H_TRACE) or None,
            wire=headers.get(H_WIRE) or None,
        )


SYSTEM = Principal(
    id="system", role=Role.OPERATOR, scopes=("operator.admin",), auth_method="system"
)
"""The principal services use for their own calls (cron firing, the wizard applying config)."""
