"""Every auth handler is declared to return its method's catalogue result model."""

from __future__ import annotations

from typing import Any, cast

from aisopod.conformance import misdeclared_handlers
from aisopod.services import ServiceName
from aisopod_auth.handlers import AuthMethods


def test_auth_handlers_return_their_result_models() -> None:
    # Only the bound methods are inspected: no registry is used.
    methods = AuthMethods(cast(Any, None), cast(Any, None), cast(Any, None))
    assert misdeclared_handlers(ServiceName.AUTH, methods.handlers()) == []


def test_a_handler_declared_to_return_a_dict_is_reported() -> None:
    async def rename(params: Any, ctx: Any) -> dict[str, Any]:
        return {}

    methods = AuthMethods(cast(Any, None), cast(Any, None), cast(Any, None))
    handlers = {**methods.handlers(), "node.rename": rename}
    assert misdeclared_handlers(ServiceName.AUTH, handlers) == [
        "node.rename returns dict, not NodeInfo"
    ]
