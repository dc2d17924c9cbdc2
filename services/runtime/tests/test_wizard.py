"""The onboarding wizard's state machine: questions, answer checks, the config patch."""

from __future__ import annotations

import pytest

from aisopod.config.model import GatewayConfig, restore_redacted
from aisopod.errors import InvalidParams
from aisopod_runtime.config_methods import merge_patch
from aisopod_runtime.wizard import STEPS, WizardFlow


def answer_all(values: dict) -> dict:
    return {step: WizardFlow.check(step, values[step]) for step in STEPS}


def test_the_patch_of_an_openai_setup_validates_and_keeps_other_providers() -> None:
    answers = answer_all(
        {
            "provider": {"kind": "openai", "apiKey": "sk-x", "baseUrl": "https://api.example/v1"},
            "model": "gpt-4o-mini",
            "authMode": "token",
            "agent": {"id": "helper", "instructions": "Be brief."},
        }
    )
    stored = GatewayConfig().document()
    document = merge_patch(stored, WizardFlow.patch(answers, stored))
    config = GatewayConfig.model_validate(document)
    ids = [p.id for p in config.models.providers]
    assert ids == ["echo", "openai"]
    assert config.models.providers[1].api_key.get_secret_value() == "sk-x"
    assert config.models.agents.default_id == "helper"
    assert config.models.agents.model == "openai/gpt-4o-mini"
    assert config.models.agents.instructions == "Be brief."


def test_echo_setup_replaces_the_echo_provider_in_place() -> None:
    answers = answer_all(
        {"provider": "echo", "model": "echo", "authMode": "device_token", "agent": "main"}
    )
    stored = GatewayConfig().document()
    config = GatewayConfig.model_validate(
        restore_redacted(merge_patch(stored, WizardFlow.patch(answers, stored)), stored)
    )
    assert [p.id for p in config.models.providers] == ["echo"]
    assert config.auth.mode == "device_token"


@pytest.mark.parametrize(
    ("step", "value"),
    [
        ("provider", "anthropic"),
        ("provider", {"kind": "openai"}),
        ("provider", {"kind": "openai", "apiKey": "k", "baseUrl": "ftp://x"}),
        ("model", "has space"),
        ("authMode", "password"),
        ("agent", "bad id!"),
    ],
)
def test_bad_answers_are_invalid_params(step: str, value: object) -> None:
    with pytest.raises(InvalidParams):
        WizardFlow.check(step, value)


def test_every_step_has_a_question() -> None:
    for step in STEPS:
        assert WizardFlow.step(step, {"provider": {"kind": "echo"}})["stepId"] == step
