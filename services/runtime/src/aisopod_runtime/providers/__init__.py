"""Model providers: the `openai` kind (any Chat Completions server) and the offline `echo`."""

from aisopod_runtime.providers.base import (
    DiscoveredModel,
    Finish,
    ModelRequest,
    Provider,
    ProviderError,
    ProviderUnavailable,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCalls,
    Usage,
)
from aisopod_runtime.providers.registry import ProviderRegistry, split_model_ref

__all__ = [
    "DiscoveredModel",
    "Finish",
    "ModelRequest",
    "Provider",
    "ProviderError",
    "ProviderRegistry",
    "ProviderUnavailable",
    "StreamEvent",
    "TextDelta",
    "ToolCall",
    "ToolCalls",
    "Usage",
    "split_model_ref",
]
