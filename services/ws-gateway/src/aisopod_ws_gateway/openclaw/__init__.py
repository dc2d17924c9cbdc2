"""OpenClaw protocol v4 beside our JSON-RPC: frames (`frames`), event shapes (`events`),
and the method adapters (`adapters`, run by `handler`). See docs/openclaw.md."""
