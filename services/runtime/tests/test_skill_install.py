"""Skill archives unpacked by skill_install: tar and zip, each refusal, the limits, and the
folder tree digest (pure file work in a temp folder; the methods run in
tests/integration/test_skills_install.py)."""

from __future__ import annotations

import hashlib
import io
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from aisopod.config.sections.skills import SkillsSection
from aisopod.errors import InvalidParams
from aisopod_runtime.skill_install import (
    copy_folder,
    safe_member_path,
    skill_root,
    tree_digest,
    unpack,
)

LIMITS = SkillsSection()
SKILL = b"---\nname: demo\nversion: 1\n---\n"


def write_zip(path: Path, entries: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return path


def write_tar(path: Path, entries: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def code(excinfo: pytest.ExceptionInfo[InvalidParams]) -> str:
    return excinfo.value.detail_code


@pytest.mark.parametrize(
    ("name", "expected"),
    [("a/b.txt", "a/b.txt"), ("./a/./b", "a/b"), ("./", None), ("dir/", "dir")],
)
def test_safe_member_paths(name: str, expected: str | None) -> None:
    got = safe_member_path(name)
    assert (str(got) if got is not None else None) == expected


@pytest.mark.parametrize("name", ["/etc/passwd", "../x", "a/../../x", "C:/x", "a\\..\\x", "a\0b"])
def test_unsafe_member_paths(name: str) -> None:
    with pytest.raises(InvalidParams) as info:
        safe_member_path(name)
    assert code(info) == "UNSAFE_ARCHIVE"


def test_zip_and_tar_unpack_to_the_same_tree(tmp_path: Path) -> None:
    entries = {"demo/SKILL.md": SKILL, "demo/bin/run.sh": b"echo hi\n"}
    for archive in (write_zip(tmp_path / "s.zip", entries), write_tar(tmp_path / "s.tgz", entries)):
        dest = tmp_path / f"out-{archive.suffix}"
        dest.mkdir()
        budget = unpack(archive, dest, LIMITS)
        assert (budget.files, budget.bytes) == (2, len(SKILL) + 8)
        root = skill_root(dest)
        assert root.name == "demo" and (root / "bin" / "run.sh").read_bytes() == b"echo hi\n"


def test_zip_links_and_traversal_are_refused(tmp_path: Path) -> None:
    linked = write_zip(tmp_path / "l.zip", {"SKILL.md": SKILL}, links={"passwd": "/etc/passwd"})
    escaping = write_zip(tmp_path / "e.zip", {"SKILL.md": SKILL, "../../evil": b"x"})
    for archive in (linked, escaping):
        dest = tmp_path / f"out-{archive.stem}"
        dest.mkdir()
        with pytest.raises(InvalidParams) as info:
            unpack(archive, dest, LIMITS)
        assert code(info) == "UNSAFE_ARCHIVE"
    assert not (tmp_path.parent / "evil").exists()


def test_limits_count_what_is_written(tmp_path: Path) -> None:
    big = write_tar(tmp_path / "big.tgz", {"SKILL.md": SKILL, "blob": b"\0" * 4096})
    many = write_zip(tmp_path / "many.zip", {f"f{i}": b"x" for i in range(5)})
    small = SkillsSection(maxUnpackedBytes=2048, maxFiles=3)
    for archive in (big, many):
        dest = tmp_path / f"out-{archive.stem}"
        dest.mkdir()
        with pytest.raises(InvalidParams) as info:
            unpack(archive, dest, small)
        assert code(info) == "TOO_LARGE"


def test_not_an_archive_and_no_skill_md(tmp_path: Path) -> None:
    text = tmp_path / "t.tgz"
    text.write_bytes(b"plain text")
    with pytest.raises(InvalidParams) as info:
        unpack(text, tmp_path, LIMITS)
    assert code(info) == "NOT_AN_ARCHIVE"
    two = tmp_path / "two"
    (two / "a").mkdir(parents=True)
    (two / "b").mkdir()
    with pytest.raises(InvalidParams) as missing:
        skill_root(two)
    assert code(missing) == "NO_SKILL_MD"


def test_tree_digest_is_the_documented_formula(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "bin").mkdir(parents=True)
    (src / "SKILL.md").write_bytes(SKILL)
    (src / "bin" / "run.sh").write_bytes(b"echo\n")
    run_sha = hashlib.sha256(b"echo\n").hexdigest()
    lines = [f"SKILL.md\0{hashlib.sha256(SKILL).hexdigest()}\n", f"bin/run.sh\0{run_sha}\n"]
    assert tree_digest(src) == hashlib.sha256("".join(lines).encode()).hexdigest()
    dest = tmp_path / "dest"
    dest.mkdir()
    copy_folder(src, dest, LIMITS)
    assert tree_digest(dest) == tree_digest(src)
    (src / "link").symlink_to("/etc/passwd")
    with pytest.raises(InvalidParams) as info:
        tree_digest(src)
    assert code(info) == "UNSAFE_ARCHIVE"
