"""A fake OpenAI-compatible model provider: a real HTTP server for aisopod tests and benchmarks.

The one fake in the project. See the package README for the answer rules and directives.
"""

from .behaviour import Behaviour
from .config import DEFAULT_MODELS, FakeUpstreamConfig
from .harness import FakeUpstream
from .server import FakeServer

__all__ = ["DEFAULT_MODELS", "Behaviour", "FakeServer", "FakeUpstream", "FakeUpstreamConfig"]
