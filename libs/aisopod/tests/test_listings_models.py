"""The pure parts of models.list at the edge: which stored discovery answers for which
provider settings, until when, and that the edge's list equals the owner's merge."""

from __future__ import annotations

from pydantic import SecretStr

from aisopod.config.sections.providers import ModelEntry, ProviderConfig
from aisopod.listings import (
    DiscoveredEntry,
    ProviderDiscovery,
    models_list,
    provider_fingerprint,
    stored_models_list,
    usable_discovery,
)

FAKE = ProviderConfig(
    id="fake",
    base_url="http://127.0.0.1:9/v1",
    api_key=SecretStr("k1"),
    models=[ModelEntry(id="small")],
)
ECHO = ProviderConfig(id="echo", kind="echo", models=[ModelEntry(id="echo")])


def stored(config: ProviderConfig, *ids: str, until: int = 2_000) -> ProviderDiscovery:
    return ProviderDiscovery(
        provider_id=config.id,
        fingerprint=provider_fingerprint(config),
        fetched_at_ms=1_000,
        expires_at_ms=until,
        ok=True,
        models=[DiscoveredEntry(id=i, context_window=8192) for i in ids],
    )


def test_the_fingerprint_follows_every_setting_secrets_included() -> None:
    same = FAKE.model_copy()
    assert provider_fingerprint(same) == provider_fingerprint(FAKE)
    for changed in (
        FAKE.model_copy(update={"api_key": SecretStr("k2")}),
        FAKE.model_copy(update={"base_url": "http://127.0.0.1:10/v1"}),
        FAKE.model_copy(update={"headers": {"X-Title": SecretStr("a")}}),
        FAKE.model_copy(update={"models": []}),
    ):
        assert provider_fingerprint(changed) != provider_fingerprint(FAKE)


def test_a_discovery_is_usable_for_its_own_settings_until_it_expires() -> None:
    entry = stored(FAKE, "large")
    assert usable_discovery(entry, FAKE, 1_999)
    assert not usable_discovery(entry, FAKE, 2_000)
    assert not usable_discovery(None, FAKE, 1_500)
    other_key = FAKE.model_copy(update={"api_key": SecretStr("k2")})
    assert not usable_discovery(entry, other_key, 1_500)


def test_the_stored_list_equals_the_owners_merge() -> None:
    configs = [ECHO, FAKE]
    entry = stored(FAKE, "small", "large")
    built = stored_models_list(configs, {"fake": entry}, 1_500)
    assert built is not None
    listed, until = built
    assert until == 2_000
    assert listed == models_list(configs, [[], entry.models])
    assert [(m.id, m.source) for m in listed] == [
        ("echo/echo", "config"),
        ("fake/small", "config"),
        ("fake/large", "upstream"),
    ]


def test_no_stored_list_without_a_current_discovery_of_each_discovering_provider() -> None:
    configs = [ECHO, FAKE]
    assert stored_models_list(configs, {}, 1_500) is None  # never discovered
    assert stored_models_list(configs, {"fake": stored(FAKE, "x")}, 2_500) is None  # expired
    changed = FAKE.model_copy(update={"base_url": "http://127.0.0.1:10/v1"})
    assert stored_models_list([ECHO, changed], {"fake": stored(FAKE, "x")}, 1_500) is None
    # A provider that does not discover needs nothing stored.
    quiet = FAKE.model_copy(update={"discover_models": False})
    built = stored_models_list([ECHO, quiet], {}, 1_500)
    assert built is not None and [m.id for m in built[0]] == ["echo/echo", "fake/small"]


def test_a_failed_discovery_lists_the_configured_models_only() -> None:
    failed = stored(FAKE).model_copy(update={"ok": False})
    built = stored_models_list([FAKE], {"fake": failed}, 1_500)
    assert built is not None and [m.id for m in built[0]] == ["fake/small"]
