"""`skills.install` / `skills.update`: a skill from an allowed local path or archive URL,
checked against its sha256, unpacked safely, swapped in atomically.

Layout of the install folder (the first skills folder, docs/runtime.md "Skills"):

    <dir>/<name>            → symlink to .store/<name>-<sha12>-<id> (what `scan` finds)
    <dir>/.store/<…>/       the unpacked version, with .aisopod-install.json {sha256, source,
                            installedAtMs}
    <dir>/.staging/<id>/    downloads and unpacking in progress (removed on any outcome)

The swap is one `rename` of a fresh symlink over `<dir>/<name>`, so a reader sees the old
version or the new one, never a half-written folder; `install` creates the link with
`symlink` (fails if the name exists: CONFLICT), `update` replaces it. Dot folders are not
skills (`scan` globs `*/SKILL.md`, which skips them).

Checks, all before anything is swapped in: the source is under `skills.installPaths` or
starts with one of `skills.installUrls` (no redirects are followed: they could leave the
list); the bytes match `sha256`; the archive stays under `maxArchiveBytes`, its content under
`maxUnpackedBytes` and `maxFiles`; no entry is absolute or has a `..` part; no links, devices
or fifos (a skill is plain files and folders); a `SKILL.md` at the top or in the one
top-level folder.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import stat
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import httpx

from aisopod.catalogue.skillinstall import (
    SkillInstallResult,
    SkillsInstallParams,
    SkillsUpdateParams,
    SkillVersion,
)
from aisopod.config.sections.skills import SkillsSection
from aisopod.errors import Conflict, Forbidden, InvalidParams, NotFound, Unavailable

if TYPE_CHECKING:
    from tarfile import TarFile
from aisopod.rpc import CallContext, Handler
from aisopod_runtime.skills import _install_record, front_matter

INSTALL_RECORD = ".aisopod-install.json"
STORE, STAGING = ".store", ".staging"
CHUNK = 64 * 1024
NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


def tree_digest(root: Path) -> str:
    """The checksum of a skill folder: sha256 over its regular files in path order, each as
    `<relative posix path>\\0<sha256 hex of its bytes>\\n`. Links and other special files
    are refused (`unsafe`), as they are in archives."""
    outer = hashlib.sha256()
    for rel, path in _walk_files(root):
        inner = hashlib.sha256()
        with path.open("rb") as f:
            while chunk := f.read(CHUNK):
                inner.update(chunk)
        outer.update(f"{rel}\0{inner.hexdigest()}\n".encode())
    return outer.hexdigest()


def _walk_files(root: Path) -> Iterator[tuple[str, Path]]:
    entries: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath) / name
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode) or not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
                raise _unsafe(f"{path.relative_to(root)} is a link or a special file")
        for name in filenames:
            path = Path(dirpath) / name
            entries.append((path.relative_to(root).as_posix(), path))
    return iter(sorted(entries))


def _unsafe(why: str) -> InvalidParams:
    return InvalidParams(f"unsafe skill content: {why}", code="UNSAFE_ARCHIVE")


def _too_large(why: str) -> InvalidParams:
    return InvalidParams(f"skill too large: {why}", code="TOO_LARGE")


def safe_member_path(name: str) -> PurePosixPath | None:
    """The relative path an archive entry may have, None for the archive root itself;
    `unsafe` for absolute paths, `..`, backslashes or drive letters."""
    if "\\" in name or "\0" in name:
        raise _unsafe(f"entry {name!r} has a backslash or NUL")
    pure = PurePosixPath(name)
    if pure.is_absolute() or (pure.parts and pure.parts[0].endswith(":")):
        raise _unsafe(f"entry {name!r} is an absolute path")
    parts = [p for p in pure.parts if p not in ("", ".")]
    if ".." in parts:
        raise _unsafe(f"entry {name!r} leaves the skill folder")
    return PurePosixPath(*parts) if parts else None


@dataclass(slots=True)
class _Budget:
    limits: SkillsSection
    files: int = 0
    bytes: int = 0

    def add_file(self) -> None:
        self.files += 1
        if self.files > self.limits.max_files:
            raise _too_large(f"more than {self.limits.max_files} files")

    def add_bytes(self, n: int) -> None:
        self.bytes += n
        if self.bytes > self.limits.max_unpacked_bytes:
            raise _too_large(f"more than {self.limits.max_unpacked_bytes} bytes unpacked")


def _copy_stream(src: IO[bytes], dest: Path, budget: _Budget) -> None:
    with dest.open("xb") as out:
        while chunk := src.read(CHUNK):
            budget.add_bytes(len(chunk))
            out.write(chunk)


def _target(root: Path, rel: PurePosixPath) -> Path:
    path = root / rel
    # Belt and braces after safe_member_path: the resolved place is still inside root.
    if not path.resolve().is_relative_to(root.resolve()):
        raise _unsafe(f"entry {rel} leaves the skill folder")
    return path


def unpack(archive: Path, dest: Path, limits: SkillsSection) -> _Budget:
    """Unpack a tar (any compression) or zip archive into `dest`, checking every entry."""
    budget = _Budget(limits)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                rel = safe_member_path(info.filename)
                mode = info.external_attr >> 16
                if stat.S_ISLNK(mode):
                    raise _unsafe(f"entry {info.filename!r} is a link")
                if rel is None:
                    continue
                path = _target(dest, rel)
                if info.is_dir():
                    path.mkdir(parents=True, exist_ok=True)
                    continue
                budget.add_file()
                path.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src:
                    _copy_stream(src, path, budget)
        return budget
    import tarfile  # here: installing from a tar archive is rare (~0.4 MiB otherwise)

    try:
        with tarfile.open(archive, "r:*") as tf:
            _unpack_tar(tf, dest, budget)
    except tarfile.TarError:
        raise InvalidParams(
            "the source is neither a tar nor a zip archive", code="NOT_AN_ARCHIVE"
        ) from None
    return budget


def _unpack_tar(tf: TarFile, dest: Path, budget: _Budget) -> None:
    for member in tf:
        rel = safe_member_path(member.name)
        if member.issym() or member.islnk():
            raise _unsafe(f"entry {member.name!r} is a link")
        if not (member.isdir() or member.isreg()):
            raise _unsafe(f"entry {member.name!r} is a device, fifo or other special file")
        if rel is None:
            continue
        path = _target(dest, rel)
        if member.isdir():
            path.mkdir(parents=True, exist_ok=True)
            continue
        budget.add_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        src = tf.extractfile(member)
        assert src is not None  # a regular file always has a stream
        with src:
            _copy_stream(src, path, budget)


def copy_folder(src: Path, dest: Path, limits: SkillsSection) -> _Budget:
    budget = _Budget(limits)
    for rel, path in _walk_files(src):
        budget.add_file()
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        with path.open("rb") as f:
            _copy_stream(f, target, budget)
    return budget


def skill_root(unpacked: Path) -> Path:
    """`SKILL.md` at the top, or in the only top-level folder."""
    if (unpacked / "SKILL.md").is_file():
        return unpacked
    children = [c for c in unpacked.iterdir()]
    if len(children) == 1 and children[0].is_dir() and (children[0] / "SKILL.md").is_file():
        return children[0]
    raise InvalidParams(
        "no SKILL.md at the top of the skill or in its one top-level folder", code="NO_SKILL_MD"
    )


def read_install_record(folder: Path) -> dict[str, Any]:
    return _install_record(folder)


def _meta(root: Path) -> dict[str, Any]:
    try:
        return front_matter((root / "SKILL.md").read_text(encoding="utf-8", errors="replace"))
    except Exception:  # malformed YAML: the skill still installs; scan will say what it sees
        return {}


class SkillInstaller:
    def __init__(self, dirs: list[Path], settings: Callable[[], SkillsSection]) -> None:
        self.dirs = dirs
        self._settings = settings
        self._lock = asyncio.Lock()  # one swap at a time in this process

    @property
    def home(self) -> Path:
        if not self.dirs:
            raise Unavailable(
                "this runtime has no skills folder (no state dir, no AISOPOD_SKILLS_DIR)",
                code="NO_SKILLS_DIR",
            )
        return self.dirs[0]

    # -- sources ------------------------------------------------------------------------
    def _allowed_url(self, url: str, limits: SkillsSection) -> None:
        parts = urlsplit(url)
        segments = [unquote(s) for s in parts.path.split("/")]
        if parts.username or parts.password or any(s in (".", "..") for s in segments):
            raise Forbidden("the URL has credentials or dot segments", code="SOURCE_NOT_ALLOWED")
        if not any(url.startswith(prefix) for prefix in limits.install_urls):
            raise Forbidden(
                "this URL is not under any of skills.installUrls", code="SOURCE_NOT_ALLOWED"
            )

    def _allowed_path(self, raw: str, limits: SkillsSection) -> Path:
        path = Path(raw).resolve()
        roots = [Path(p).resolve() for p in limits.install_paths]
        if not any(path.is_relative_to(root) for root in roots):
            raise Forbidden(
                "this path is not under any of skills.installPaths", code="SOURCE_NOT_ALLOWED"
            )
        if not path.exists():
            raise NotFound(f"no file or folder at {raw}", code="SOURCE_NOT_FOUND")
        return path

    async def _download(self, url: str, dest: Path, limits: SkillsSection) -> str:
        digest = hashlib.sha256()
        size = 0
        try:
            async with (
                httpx.AsyncClient(
                    timeout=limits.download_timeout_s, follow_redirects=False, trust_env=False
                ) as client,
                client.stream("GET", url) as response,
            ):
                if response.status_code != 200:
                    raise Unavailable(
                        f"downloading the archive answered HTTP {response.status_code}",
                        code="DOWNLOAD_FAILED",
                    )
                with dest.open("xb") as out:
                    async for chunk in response.aiter_bytes(CHUNK):
                        size += len(chunk)
                        if size > limits.max_archive_bytes:
                            raise _too_large(f"archive over {limits.max_archive_bytes} bytes")
                        digest.update(chunk)
                        out.write(chunk)
        except httpx.HTTPError as exc:
            raise Unavailable(
                f"downloading the archive failed: {type(exc).__name__}", code="DOWNLOAD_FAILED"
            ) from None
        return digest.hexdigest()

    # -- install ------------------------------------------------------------------------
    async def install(
        self, params: SkillsInstallParams | SkillsUpdateParams, *, update: bool
    ) -> SkillInstallResult:
        limits = self._settings()
        home = self.home
        staging = home / STAGING / uuid.uuid4().hex
        staging.mkdir(parents=True)
        try:
            unpacked = staging / "unpacked"
            unpacked.mkdir()
            if params.source.startswith(("http://", "https://")):
                self._allowed_url(params.source, limits)
                archive = staging / "archive"
                actual = await self._download(params.source, archive, limits)
                _check_sum(params.sha256, actual)
                budget = await asyncio.to_thread(unpack, archive, unpacked, limits)
            else:
                path = self._allowed_path(params.source, limits)
                if path.is_dir():
                    actual = await asyncio.to_thread(tree_digest, path)
                    _check_sum(params.sha256, actual)
                    budget = await asyncio.to_thread(copy_folder, path, unpacked, limits)
                else:
                    if path.stat().st_size > limits.max_archive_bytes:
                        raise _too_large(f"archive over {limits.max_archive_bytes} bytes")
                    actual = await asyncio.to_thread(_file_digest, path)
                    _check_sum(params.sha256, actual)
                    budget = await asyncio.to_thread(unpack, path, unpacked, limits)
            root = skill_root(unpacked)
            meta = _meta(root)
            name = params.name or _name_from(meta, root, params.source)
            async with self._lock:
                return await asyncio.to_thread(
                    self._swap, home, root, name, meta, actual, params.source, budget, update
                )
        finally:
            await asyncio.to_thread(shutil.rmtree, staging, True)

    def _swap(
        self,
        home: Path,
        root: Path,
        name: str,
        meta: dict[str, Any],
        digest: str,
        source: str,
        budget: _Budget,
        update: bool,
    ) -> SkillInstallResult:
        final = home / name
        exists = final.is_symlink() or final.exists()
        if update and not exists:
            raise NotFound(
                f"no skill {name!r} installed; use skills.install", code="SKILL_NOT_FOUND"
            )
        if not update and exists:
            raise Conflict(f"skill {name!r} exists; use skills.update", code="SKILL_EXISTS")
        previous = None
        if exists:
            previous = SkillVersion(
                version=_version(_meta(final)), sha256=read_install_record(final).get("sha256")
            )
        installed_at = int(time.time() * 1000)
        store = home / STORE
        store.mkdir(exist_ok=True)
        version_dir = store / f"{name}-{digest[:12]}-{uuid.uuid4().hex[:8]}"
        os.rename(root, version_dir)
        record = {"sha256": digest, "source": source, "installedAtMs": installed_at}
        (version_dir / INSTALL_RECORD).write_text(json.dumps(record))
        link_target = f"{STORE}/{version_dir.name}"
        if update:
            old_target = final.resolve() if final.is_symlink() else None
            if not final.is_symlink():
                # A hand-placed folder: moved aside first (a moment without the skill).
                os.rename(final, store / f"{name}-replaced-{uuid.uuid4().hex[:8]}")
            tmp_link = home / STAGING / f"{uuid.uuid4().hex}.link"
            os.symlink(link_target, tmp_link)
            os.replace(tmp_link, final)
            if old_target is not None and old_target.parent == store.resolve():
                shutil.rmtree(old_target, ignore_errors=True)
        else:
            try:
                os.symlink(link_target, final)
            except FileExistsError:
                shutil.rmtree(version_dir, ignore_errors=True)
                raise Conflict(
                    f"skill {name!r} exists; use skills.update", code="SKILL_EXISTS"
                ) from None
        return SkillInstallResult(
            name=name,
            version=_version(meta),
            sha256=digest,
            source=source,
            installed_at_ms=installed_at,
            files=budget.files,
            bytes=budget.bytes,
            previous=previous,
        )


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _check_sum(expected: str, actual: str) -> None:
    if expected.lower() != actual:
        raise InvalidParams(
            f"sha256 mismatch: expected {expected.lower()}, the source has {actual}",
            code="CHECKSUM_MISMATCH",
        )


def _version(meta: dict[str, Any]) -> str | None:
    value = meta.get("version")
    return str(value) if value is not None and str(value).strip() else None


def _name_from(meta: dict[str, Any], root: Path, source: str) -> str:
    for candidate in (meta.get("name"), root.name if root.name != "unpacked" else None):
        if (
            isinstance(candidate, str)
            and 0 < len(candidate) <= 64
            and set(candidate) <= NAME_CHARS
            and candidate[0].isalnum()
        ):
            return candidate
    raise InvalidParams(
        "the skill's name (front matter or folder) is not a valid skill name; pass `name`",
        code="BAD_SKILL_NAME",
    )


def skill_install_handlers(installer: SkillInstaller) -> dict[str, Handler]:
    async def install(params: SkillsInstallParams, ctx: CallContext) -> SkillInstallResult:
        return await installer.install(params, update=False)

    async def update(params: SkillsUpdateParams, ctx: CallContext) -> SkillInstallResult:
        return await installer.install(params, update=True)

    return {"skills.install": install, "skills.update": update}
