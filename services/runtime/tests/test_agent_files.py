"""The agent files' pure parts: the system prompt's layout and IDENTITY.md parsing."""

from __future__ import annotations

from aisopod.catalogue.agents import Agent
from aisopod_runtime.agent_files import compose_prompt, parse_identity, resolve_identity


def test_the_prompt_is_the_instructions_then_each_file_under_its_name() -> None:
    assert compose_prompt("Be exact.", []) == "Be exact."
    prompt = compose_prompt("Be exact.\n", [("AGENTS.md", "Rules.\n\n"), ("SOUL.md", "Calm.")])
    assert prompt == "Be exact.\n\n# Agent files\n\n## AGENTS.md\n\nRules.\n\n## SOUL.md\n\nCalm.\n"


def test_identity_md_lines_and_placeholders() -> None:
    text = (
        "# IDENTITY.md - Who Am I?\n\n"
        "- **Name:** Molty\n"
        "- **Creature:** lobster\n"
        "- Emoji: (your signature - pick one that feels right)\n"
        "* Avatar: `avatars/molty.png`\n"
        "Name: Second\n"
    )
    # The first of each field counts; markdown emphasis and backticks are dropped.
    assert parse_identity(text) == {"name": "Molty", "avatar": "avatars/molty.png"}
    assert parse_identity("- Avatar: `https://x.test/a.png`") == {"avatar": "https://x.test/a.png"}


def test_settings_win_over_the_file_which_wins_over_the_agent_name() -> None:
    agent = Agent(id="a", name="Agent A")
    assert resolve_identity(agent, {}).model_dump(exclude_none=True) == {
        "agent_id": "a",
        "name": "Agent A",
        "name_source": "agent",
    }
    from_file = resolve_identity(agent, {"name": "Molty", "emoji": "🦞", "avatar": "M"})
    assert (from_file.name, from_file.name_source, from_file.avatar_source) == (
        "Molty",
        "workspace",
        "workspace",
    )
    configured = Agent(id="a", name="Agent A", identity={"name": "Claw", "emoji": "🤖"})
    both = resolve_identity(configured, {"name": "Molty", "emoji": "🦞"})
    assert (both.name, both.name_source, both.emoji) == ("Claw", "config", "🤖")
