"""The local stack launcher: nats-server, every service, caddy and traefik as processes."""
