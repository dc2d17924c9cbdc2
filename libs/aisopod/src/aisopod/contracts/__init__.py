"""Internal service-to-service contracts (NATS subjects that are not catalogue methods).

Each module pins one seam as pydantic models, so both sides are built against the same
shapes: `auth` (auth.verify, connection closes), `ratelimit` (check/fail/reset).
"""
