"""The names of the gateway's services: used for NATS users, micro registration, owners."""

from enum import StrEnum


class ServiceName(StrEnum):
    WS_GATEWAY = "ws-gateway"
    HTTP_API = "http-api"
    AUTH = "auth"
    RATELIMIT = "ratelimit"
    RUNTIME = "runtime"
    STATIC_UI = "static-ui"


PYTHON_SERVICES: tuple[ServiceName, ...] = (
    ServiceName.AUTH,
    ServiceName.RATELIMIT,
    ServiceName.RUNTIME,
    ServiceName.WS_GATEWAY,
    ServiceName.HTTP_API,
)
EDGE_SERVICES: tuple[ServiceName, ...] = (ServiceName.WS_GATEWAY, ServiceName.HTTP_API)
