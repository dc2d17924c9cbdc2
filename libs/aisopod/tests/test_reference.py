"""The generated protocol reference (docs/protocol/) against the code that generates it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from pydantic import BaseModel

from aisopod import errors
from aisopod.catalogue import CATALOGUE, EVENT_AUDIENCE
from aisopod.catalogue.examples import EXAMPLES, NOTES
from aisopod.catalogue.export import (
    BEGIN_MARKER,
    END_MARKER,
    render_methods_block,
    render_methods_md,
    render_schema,
    schema_document,
)
from aisopod.catalogue.payloads import EVENT_PAYLOADS
from aisopod.conformance import conform_wire
from aisopod_ops.cli import main

REPO_ROOT = Path(__file__).resolve().parents[3]
PROTOCOL_DOCS = REPO_ROOT / "docs/protocol"


def _error_names() -> set[str]:
    return {
        value.name
        for value in vars(errors).values()
        if isinstance(value, type) and issubclass(value, errors.AisopodError)
    }


def test_committed_reference_matches_the_catalogue() -> None:
    methods, schema = PROTOCOL_DOCS / "methods.md", PROTOCOL_DOCS / "schema.json"
    committed = {path: path.read_text(encoding="utf-8") for path in (methods, schema)}
    wanted = {methods: render_methods_md(committed[methods]), schema: render_schema()}
    stale = [
        path.relative_to(REPO_ROOT).as_posix()
        for path, text in wanted.items()
        if committed[path] != text
    ]
    assert not stale, (
        f"{', '.join(stale)} differ from the catalogue: run `aisopod catalogue export` "
        "at the repository root and commit the result"
    )


def test_every_method_has_an_example_that_validates() -> None:
    assert set(EXAMPLES) == set(CATALOGUE)
    assert set(NOTES) <= set(CATALOGUE), set(NOTES) - set(CATALOGUE)
    for name, spec in CATALOGUE.items():
        example = EXAMPLES[name]
        spec.params.model_validate(example.params)
        # As strict as a live reply under validate_replies: no field the model lacks.
        conform_wire(spec.result, example.result, f"example of {name}")


def test_example_errors_use_documented_error_names() -> None:
    names = _error_names()
    for name, example in EXAMPLES.items():
        for error in example.errors:
            assert error.split()[0].rstrip(":") in names, (name, error)


def test_schema_covers_every_method_and_event() -> None:
    document = schema_document()
    Draft202012Validator.check_schema(document)
    assert set(document["methods"]) == set(CATALOGUE)
    assert set(document["events"]) == set(EVENT_AUDIENCE) == set(EVENT_PAYLOADS)
    for entry in [*document["methods"].values(), *document["events"].values()]:
        for part in ("params", "result", "payload"):
            if part in entry:
                assert entry[part]["$ref"].removeprefix("#/$defs/") in document["$defs"]


def _validator(document: dict[str, Any], ref: str) -> Draft202012Validator:
    return Draft202012Validator({"$ref": ref, "$defs": document["$defs"]})


def test_examples_validate_against_the_published_schema() -> None:
    """What client authors generate types from accepts what the server really sends."""
    document = json.loads((PROTOCOL_DOCS / "schema.json").read_text(encoding="utf-8"))
    for name, example in EXAMPLES.items():
        method = document["methods"][name]
        _validator(document, method["params"]["$ref"]).validate(example.params)
        _validator(document, method["result"]["$ref"]).validate(example.result)


def test_schema_rejects_what_the_models_reject() -> None:
    document = schema_document()
    params = _validator(document, document["methods"]["chat.send"]["params"]["$ref"])
    assert not params.is_valid({"sessionKey": "agent:main:main"})
    assert not params.is_valid({"sessionKey": "k", "message": "hi", "surprise": 1})


EVENT_EXAMPLES: list[tuple[str, dict[str, Any]]] = [
    ("connect.challenge", {"nonce": "n-1", "ts": 1764240000000}),
    ("tick", {"ts": 1764240000000}),
    ("shutdown", {"reason": "service restart", "restartExpectedMs": 5000}),
    (
        "chat.event",
        {
            "runId": "r1",
            "sessionKey": "agent:main:main",
            "seq": 3,
            "state": "delta",
            "message": {"role": "assistant", "content": "Hel"},
            "delta": "l",
        },
    ),
    (
        "agent.event",
        {
            "runId": "r1",
            "sessionKey": "agent:main:main",
            "seq": 1,
            "stream": "lifecycle",
            "data": {"phase": "start"},
        },
    ),
    ("cron.event", {"jobId": "j1", "action": "started", "status": "running", "runId": "c1"}),
    ("config.changed", {"hash": "h2", "paths": ["hooks.enabled"]}),
    ("exec.approval.resolved", {"id": "a1", "decision": "deny", "resolvedBy": "admin"}),
    ("node.pair.resolved", {"requestId": "q1", "nodeId": "mac-1", "decision": "approved"}),
    ("update.progress", {"rolloutId": "u1", "phase": "restarting", "total": 5, "service": "auth"}),
]


@pytest.mark.parametrize(("event", "payload"), EVENT_EXAMPLES, ids=[e for e, _ in EVENT_EXAMPLES])
def test_event_payloads_validate(event: str, payload: dict[str, Any]) -> None:
    model: type[BaseModel] = EVENT_PAYLOADS[event]
    assert model.model_validate(payload).model_dump(by_alias=True, exclude_unset=True) == payload


def test_handwritten_prose_around_the_generated_block_is_kept() -> None:
    page = f"# Title\n\nintro\n\n{BEGIN_MARKER}\nSTALE-BLOCK\n{END_MARKER}\n\noutro\n"
    rendered = render_methods_md(page)
    assert rendered.startswith("# Title\n\nintro\n\n" + BEGIN_MARKER)
    assert rendered.endswith(END_MARKER + "\n\noutro\n")
    assert "STALE-BLOCK" not in rendered and "### `chat.send`" in rendered
    assert render_methods_md(rendered) == rendered
    with pytest.raises(ValueError, match="markers"):
        render_methods_md("# no markers\n")


def _heading_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives the headings of a page: lower case, punctuation but `-` and
    `_` dropped, spaces as `-` (the generated block names no heading twice)."""
    anchors = set()
    for line in markdown.splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return anchors


def test_every_link_in_the_generated_block_names_a_heading_of_it() -> None:
    block = render_methods_block()
    anchors = _heading_anchors(block)
    dead = sorted({link for link in re.findall(r"\]\(#([^)]+)\)", block) if link not in anchors})
    assert not dead, f"links to no heading of methods.md: {dead}"


def test_export_command_writes_then_checks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "protocol"
    with pytest.raises(SystemExit) as stale:
        main(["catalogue", "export", "--dir", str(folder), "--check"])
    assert stale.value.code == 1
    assert "aisopod catalogue export" in capsys.readouterr().err
    with pytest.raises(SystemExit) as wrote:
        main(["catalogue", "export", "--dir", str(folder)])
    assert wrote.value.code == 0
    assert json.loads((folder / "schema.json").read_text())["methods"].keys() == CATALOGUE.keys()
    with pytest.raises(SystemExit) as fresh:
        main(["catalogue", "export", "--dir", str(folder), "--check"])
    assert fresh.value.code == 0
    assert "schema.json" in capsys.readouterr().out  # says so, not only by its exit code
