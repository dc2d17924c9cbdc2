"""skills.install / skills.update against the real stack (two runtime replicas sharing the
state folder): from a local folder, from an archive served by an HTTP server in this test,
a bad checksum, a URL and a path outside the allow-lists, a traversal and a symlink archive,
an update to a new version, and skills.status showing the versions."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import io
import tarfile
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from aisopod.bus import Bus
from aisopod.errors import AisopodError, Conflict, Forbidden, InvalidParams, NotFound
from aisopod.principal import Principal
from aisopod_runtime.skill_install import tree_digest

pytestmark = pytest.mark.integration


def admin() -> Principal:
    # A fresh principal per config write: the control-write limit is per principal.
    return Principal(id=f"skills-{uuid.uuid4().hex[:10]}", scopes=("operator.admin",))


def skill_md(name: str, version: str) -> str:
    return f"---\nname: {name}\ndescription: test skill {name}\nversion: {version}\n---\nhi\n"


def tar_bytes(entries: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for info, data in entries:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def file_entry(name: str, text: str) -> tuple[tarfile.TarInfo, bytes]:
    data = text.encode()
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def skill_archive(name: str, version: str) -> bytes:
    return tar_bytes(
        [
            file_entry(f"{name}/SKILL.md", skill_md(name, version)),
            file_entry(f"{name}/scripts/run.sh", f"echo {version}\n"),
        ]
    )


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """An HTTP server on loopback serving a folder; (base URL, folder)."""
    root = tmp_path_factory.mktemp("skill-archives")
    (root / "ok").mkdir()
    (root / "other").mkdir()
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def local_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("skill-sources")


@pytest_asyncio.fixture(loop_scope="session")
async def allowed(
    bus: Bus, served: tuple[str, Path], local_root: Path
) -> AsyncIterator[dict[str, Any]]:
    """Allow `<server>/ok/` and the local folder; put the config back afterwards."""
    base, _ = served
    before = await bus.call("config.get", {}, principal=admin())
    skills = {"installUrls": [f"{base}/ok/"], "installPaths": [str(local_root)]}
    patched = await bus.call(
        "config.patch",
        {"patch": {"skills": skills}, "baseHash": before["hash"]},
        principal=admin(),
    )
    await _until_every_runtime_allows(bus, local_root)
    try:
        yield skills
    finally:
        current = await bus.call("config.get", {}, principal=admin())
        assert current["hash"] == patched["hash"], "the config changed under the test"
        await bus.call(
            "config.apply",
            {"config": before["config"], "baseHash": current["hash"]},
            principal=admin(),
            timeout=30,
        )


async def _until_every_runtime_allows(bus: Bus, local_root: Path) -> None:
    """The config reaches each replica through its KV watch: poll until a run of calls (spread
    over the replicas by the queue group) all pass the allow-list (and fail the checksum)."""
    probe = local_root / "probe"
    probe.mkdir(exist_ok=True)
    (probe / "SKILL.md").write_text(skill_md("probe", "0"))
    params = {"source": str(probe), "sha256": "0" * 64}
    deadline = asyncio.get_running_loop().time() + 30
    streak = 0
    while streak < 12:
        assert asyncio.get_running_loop().time() < deadline, "config never reached the runtimes"
        try:
            await bus.call("skills.install", params, principal=admin())
        except InvalidParams as exc:
            assert exc.detail_code == "CHECKSUM_MISMATCH"
            streak += 1
        except Forbidden:
            streak = 0
            await asyncio.sleep(0.1)


async def status_of(bus: Bus, name: str) -> dict[str, Any] | None:
    skills = (await bus.call("skills.status", {}, principal=admin()))["skills"]
    return next((s for s in skills if s["name"] == name), None)


async def test_install_from_a_local_folder_then_update_from_a_url(
    bus: Bus, allowed: dict[str, Any], served: tuple[str, Path], local_root: Path
) -> None:
    name = f"weather-{uuid.uuid4().hex[:6]}"
    folder = local_root / name
    (folder / "scripts").mkdir(parents=True)
    (folder / "SKILL.md").write_text(skill_md(name, "1.0.0"))
    (folder / "scripts" / "run.sh").write_text("echo one\n")
    digest = tree_digest(folder)

    installed = await bus.call(
        "skills.install", {"source": str(folder), "sha256": digest}, principal=admin()
    )
    assert installed["name"] == name and installed["version"] == "1.0.0"
    assert installed["sha256"] == digest and installed["files"] == 2
    assert installed["previous"] is None
    # Every replica reads the same folder: status agrees whichever answers.
    for _ in range(4):
        seen = await status_of(bus, name)
        assert seen is not None
        assert seen["version"] == "1.0.0" and seen["sha256"] == digest
        assert seen["source"] == str(folder)

    with pytest.raises(Conflict) as twice:
        await bus.call(
            "skills.install", {"source": str(folder), "sha256": digest}, principal=admin()
        )
    assert twice.value.detail_code == "SKILL_EXISTS"

    base, root = served
    archive = skill_archive(name, "2.0.0")
    (root / "ok" / f"{name}-2.tar.gz").write_bytes(archive)
    url = f"{base}/ok/{name}-2.tar.gz"
    updated = await bus.call(
        "skills.update", {"name": name, "source": url, "sha256": sha(archive)}, principal=admin()
    )
    assert updated["version"] == "2.0.0" and updated["sha256"] == sha(archive)
    assert updated["previous"] == {"version": "1.0.0", "sha256": digest}
    seen = await status_of(bus, name)
    assert seen is not None and seen["version"] == "2.0.0" and seen["source"] == url


async def test_update_of_a_missing_skill_is_not_found(
    bus: Bus, allowed: dict[str, Any], served: tuple[str, Path]
) -> None:
    base, root = served
    name = f"ghost-{uuid.uuid4().hex[:6]}"
    archive = skill_archive(name, "1")
    (root / "ok" / f"{name}.tgz").write_bytes(archive)
    with pytest.raises(NotFound) as info:
        await bus.call(
            "skills.update",
            {"name": name, "source": f"{base}/ok/{name}.tgz", "sha256": sha(archive)},
            principal=admin(),
        )
    assert info.value.detail_code == "SKILL_NOT_FOUND"
    assert await status_of(bus, name) is None


async def test_refusals_install_nothing(
    bus: Bus, allowed: dict[str, Any], served: tuple[str, Path], tmp_path: Path
) -> None:
    base, root = served
    name = f"bad-{uuid.uuid4().hex[:6]}"
    good = skill_archive(name, "1")
    (root / "ok" / "good.tgz").write_bytes(good)
    (root / "other" / "good.tgz").write_bytes(good)
    traversal = tar_bytes(
        [file_entry(f"{name}/SKILL.md", skill_md(name, "1")), file_entry("../escape.txt", "x")]
    )
    (root / "ok" / "traversal.tgz").write_bytes(traversal)
    absolute = tar_bytes(
        [file_entry(f"{name}/SKILL.md", skill_md(name, "1")), file_entry("/tmp/abs.txt", "x")]
    )
    (root / "ok" / "absolute.tgz").write_bytes(absolute)
    link = tarfile.TarInfo(f"{name}/passwd")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    symlinked = tar_bytes([file_entry(f"{name}/SKILL.md", skill_md(name, "1")), (link, None)])
    (root / "ok" / "symlink.tgz").write_bytes(symlinked)
    (root / "ok" / "not-an-archive.tgz").write_bytes(b"just text, not an archive")

    cases: list[tuple[dict[str, Any], type[AisopodError], str]] = [
        ({"source": f"{base}/ok/good.tgz", "sha256": sha(b"other")}, InvalidParams,
         "CHECKSUM_MISMATCH"),
        ({"source": f"{base}/other/good.tgz", "sha256": sha(good)}, Forbidden,
         "SOURCE_NOT_ALLOWED"),
        ({"source": f"{base}/ok/../other/good.tgz", "sha256": sha(good)}, Forbidden,
         "SOURCE_NOT_ALLOWED"),
        ({"source": str(tmp_path), "sha256": sha(good)}, Forbidden, "SOURCE_NOT_ALLOWED"),
        ({"source": f"{base}/ok/traversal.tgz", "sha256": sha(traversal)}, InvalidParams,
         "UNSAFE_ARCHIVE"),
        ({"source": f"{base}/ok/absolute.tgz", "sha256": sha(absolute)}, InvalidParams,
         "UNSAFE_ARCHIVE"),
        ({"source": f"{base}/ok/symlink.tgz", "sha256": sha(symlinked)}, InvalidParams,
         "UNSAFE_ARCHIVE"),
        ({"source": f"{base}/ok/not-an-archive.tgz",
          "sha256": sha(b"just text, not an archive")}, InvalidParams, "NOT_AN_ARCHIVE"),
        ({"source": f"{base}/ok/missing.tgz", "sha256": sha(good)}, AisopodError,
         "DOWNLOAD_FAILED"),
        ({"source": "ftp://example.com/x.tgz", "sha256": sha(good)}, InvalidParams, ""),
        ({"source": f"{base}/ok/good.tgz", "sha256": "nothex"}, InvalidParams, ""),
    ]  # fmt: skip
    for params, error, code in cases:
        with pytest.raises(error) as info:
            await bus.call("skills.install", params, principal=admin())
        if code:
            assert info.value.detail_code == code, params
    assert await status_of(bus, name) is None
    assert not (root.parent / "escape.txt").exists()
