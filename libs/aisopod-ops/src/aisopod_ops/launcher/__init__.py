"""The local stack launcher: nats-server, every service, caddy and traefik as processes."""

from aisopod_ops.launcher.leannats import import_nats

# Before any launcher module imports nats-py (edgesync.py, probe.py): nats-py's own
# version lookup would otherwise keep `importlib.metadata` in the supervisor (leannats.py).
import_nats()
