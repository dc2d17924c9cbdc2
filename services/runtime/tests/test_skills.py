"""The skills folder: front matter, required binaries and environment."""

from __future__ import annotations

from pathlib import Path

from aisopod_runtime.skills import front_matter, scan, skills_dirs


def write_skill(root: Path, folder: str, text: str) -> None:
    (root / folder).mkdir(parents=True)
    (root / folder / "SKILL.md").write_text(text)


def test_front_matter_reads_the_leading_yaml_block_only() -> None:
    assert front_matter("---\nname: a\n---\nbody\n---\nname: b\n---\n") == {"name": "a"}
    assert front_matter("no front matter") == {}
    assert front_matter("---\nunterminated: true\n") == {}


def test_eligibility_reports_missing_bins_and_env(tmp_path: Path) -> None:
    write_skill(
        tmp_path,
        "weather",
        "---\nname: weather\ndescription: Forecasts.\nrequires:\n"
        "  bins: [sh, definitely-not-a-binary-xyz]\n  env: [WEATHER_KEY, HOME_SET]\n---\n",
    )
    write_skill(
        tmp_path,
        "notes",
        '---\nname: notes\ndescription: Notes.\nmetadata: {"openclaw": {"requires": '
        '{"bins": ["sh"]}}}\n---\n',
    )
    write_skill(tmp_path, "plain", "# no front matter: named after its folder\n")
    skills = {s.name: s for s in scan([tmp_path], environ={"HOME_SET": "1", "WEATHER_KEY": ""})}
    assert set(skills) == {"weather", "notes", "plain"}
    weather = skills["weather"].status()
    assert weather["eligible"] is False
    assert weather["missing"] == {"bins": ["definitely-not-a-binary-xyz"], "env": ["WEATHER_KEY"]}
    assert skills["notes"].eligible and skills["notes"].bins == ("sh",)
    assert skills["plain"].eligible and skills["plain"].description == ""


def test_skills_dirs_from_env_or_state_dir(tmp_path: Path) -> None:
    assert skills_dirs({}, tmp_path) == [tmp_path / "skills"]
    assert skills_dirs({"AISOPOD_SKILLS_DIR": "/a:/b"}, tmp_path) == [Path("/a"), Path("/b")]
    assert skills_dirs({}, None) == []
