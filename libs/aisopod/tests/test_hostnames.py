"""The gateway's own host names (the DNS-rebinding defence)."""

from __future__ import annotations

from aisopod.hostnames import host_of_header, is_configured_host, own_host_names


def test_own_names_come_from_public_url_bind_and_allowed_origins() -> None:
    names = own_host_names(
        "https://Gateway.Example:8443", "0.0.0.0", ["https://ui.example", "not a url"]
    )
    assert names == {"gateway.example", "ui.example"}
    assert own_host_names(None, "gw.lan") == {"gw.lan"}


def test_addresses_and_loopback_names_need_no_configuration() -> None:
    for host in ("127.0.0.1", "::1", "[::1]", "192.0.2.5", "localhost", "app.localhost"):
        assert is_configured_host(host, ()), host
    assert is_configured_host("gateway.example.", {"gateway.example"})
    for host in ("evil.example", "localhost.evil.example", "127.0.0.1.nip.io"):
        assert not is_configured_host(host, {"gateway.example"}), host


def test_host_header_values() -> None:
    assert host_of_header("evil.example:8080") == "evil.example"
    assert host_of_header("[::1]:8080") == "::1"
    assert host_of_header("127.0.0.1") == "127.0.0.1"
