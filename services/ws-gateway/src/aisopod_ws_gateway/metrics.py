"""Prometheus metrics of the ws-gateway (served on /metrics)."""

from prometheus_client import Counter, Gauge

CONNECTIONS = Gauge("aisopod_ws_connections", "open WebSocket connections (after hello)")
HANDSHAKES = Counter("aisopod_ws_handshakes_total", "handshakes by outcome", ["outcome"])
FRAMES_IN = Counter("aisopod_ws_frames_in_total", "text frames received")
FRAMES_OUT = Counter("aisopod_ws_frames_out_total", "responses and addressed frames sent")
REQUESTS = Counter("aisopod_ws_requests_total", "requests after hello")
ERRORS = Counter("aisopod_ws_internal_errors_total", "internal errors answered", ["name"])
EVENTS = Counter("aisopod_ws_events_total", "broadcast events received from the stream")
DELIVERIES = Counter("aisopod_ws_event_deliveries_total", "event frames written to clients")
EVENTS_DROPPED = Counter("aisopod_ws_events_dropped_total", "droppable events skipped")
SLOW_CONSUMERS = Counter("aisopod_ws_slow_consumers_total", "clients closed as slow consumers")
