"""The `aisopod` command's output where a shell pipeline meets it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PROTOCOL_DOCS = Path(__file__).resolve().parents[3] / "docs" / "protocol"
CHECK = (sys.executable, "-m", "aisopod_ops.cli", "catalogue", "export", "--check")
CHECK_DOCS = [*CHECK, "--dir", str(PROTOCOL_DOCS)]


def test_a_reader_that_went_away_ends_the_command_without_a_traceback() -> None:
    """`aisopod call … | head`: the pipe's reader is gone before the command writes."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # every write now meets EPIPE: no race with the child's timing
    try:
        done = subprocess.run(
            CHECK_DOCS,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr
    assert done.returncode == 141


def test_check_says_the_reference_is_current() -> None:
    done = subprocess.run(
        CHECK_DOCS,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "schema.json" in done.stdout and "current" in done.stdout
