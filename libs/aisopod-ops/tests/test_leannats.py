"""The launcher imports nats-py without keeping `importlib.metadata` (leannats.py): nats-py
still knows its real version, and later imports get the real `importlib.metadata`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from aisopod_ops.launcher.leannats import METADATA_MODULE, _StandIn, dist_info_version


def test_dist_info_version_reads_the_directory_name(tmp_path: Path) -> None:
    (tmp_path / "other-1.0.dist-info").mkdir()
    (tmp_path / "nats_py-2.16.0.dist-info").mkdir()
    assert dist_info_version([str(tmp_path / "missing"), str(tmp_path)]) == "2.16.0"
    assert dist_info_version([str(tmp_path / "missing")]) is None


def test_nats_py_keeps_its_version_and_metadata_stays_real() -> None:
    # A fresh interpreter: this test process has long imported importlib.metadata.
    script = """
import json
import sys
import aisopod_ops.launcher  # imports nats-py (leannats.import_nats)
import nats.aio.client
before = "importlib.metadata" in sys.modules
import importlib.metadata
print(json.dumps({
    "metadata_loaded_by_nats": before,
    "nats_version": nats.aio.client.__version__,
    "real_nats_version": importlib.metadata.version("nats-py"),
    "pydantic_version": importlib.metadata.version("pydantic"),
    "real_module": type(importlib.metadata).__name__ == "module"
    and hasattr(importlib.metadata, "entry_points"),
}))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    seen = json.loads(done.stdout)
    assert seen["metadata_loaded_by_nats"] is False
    assert seen["nats_version"] == seen["real_nats_version"] != "0.0.0"
    assert seen["pydantic_version"]
    assert seen["real_module"] is True


def test_the_stand_in_answers_anything_else_with_the_real_module() -> None:
    import importlib.metadata as real

    stand_in = _StandIn(METADATA_MODULE)
    assert stand_in.version("pydantic") == real.version("pydantic")
    assert stand_in.entry_points is real.entry_points
    with pytest.raises(AttributeError):
        stand_in.__path__  # noqa: B018  # the import system's probe, not the library's API
