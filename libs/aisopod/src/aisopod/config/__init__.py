"""The gateway configuration: model (sections), stored document, live watcher."""

from aisopod.config.model import REDACTED, GatewayConfig, config_hash, restore_redacted

__all__ = ["REDACTED", "GatewayConfig", "config_hash", "restore_redacted"]
