"""websockets internals the transport relies on (pinned `websockets>=17.4,<17.5`), and why.

The transport reads simple frames itself (`wsframes.client_messages`) while websockets'
sans-I/O parser is idle between frames, and hands bytes back to it otherwise. Knowing
"idle between frames" takes undocumented state of `Protocol`:

- `current_size`: the size of the fragmented message being assembled (None: none);
- `reader.buffer`: bytes fed to the parser and not yet parsed;
- `parser`: the parser generator; it is between frames when its innermost generator is
  `StreamReader.at_eof` (inside a frame it waits in `read_exact`);
- `max_message_size`: the message limit, read by our frame reader and raised after hello;
- `Protocol.parse`: the frame-level parser `ServerProtocol.parse` delegates to once the
  request is read; restarted on its own when idle (`restart_idle_parser`).

`tests/test_compat_websockets.py` checks each against the installed version.
"""

from __future__ import annotations

from websockets.protocol import OPEN, Protocol
from websockets.streams import StreamReader

PROTOCOL_INTERNALS = ("current_size", "reader", "parser", "max_message_size")
_AT_EOF = StreamReader.at_eof.__code__
_MAX_DEPTH = 4


def parser_between_frames(ws: Protocol) -> bool:
    """Whether websockets has no partial frame or message: its parser waits for the first
    byte of the next frame and holds no unparsed bytes."""
    return ws.current_size is None and not ws.reader.buffer and _waits_at_eof(ws.parser)


def _waits_at_eof(parser: object) -> bool:
    for _ in range(_MAX_DEPTH):
        inner = getattr(parser, "gi_yieldfrom", None)
        if inner is None:
            return getattr(parser, "gi_code", None) is _AT_EOF
        parser = inner
    return False


def max_message_size(ws: Protocol) -> int | None:
    return ws.max_message_size


def set_max_message_size(ws: Protocol, size: int | None) -> None:
    """Change the limit of an open connection (websockets takes it only at construction)."""
    ws.max_message_size = size


def restart_idle_parser(ws: Protocol) -> bool:
    """Drop what websockets' parser generator keeps alive while it waits between frames:
    `ServerProtocol.parse` holds the parsed upgrade request (its headers: several hundred
    bytes, kilobytes behind a proxy) as a local for the connection's lifetime, and
    `Protocol.parse` the last frame it parsed (for us the `connect` frame, as later simple
    frames are read by `wsframes`). Between frames `Protocol.parse` holds no other state,
    so a fresh one takes the old generator's place. False (nothing changed) when the
    connection is not open or a frame is begun."""
    if ws.state is not OPEN or not parser_between_frames(ws):
        return False
    old, ws.parser = ws.parser, Protocol.parse(ws)
    next(ws.parser)  # start the coroutine, as Protocol.__init__ does
    old.close()
    return True
