"""The collector target: URL and token checked before anything is sent, the token kept out
of every message, plain http:// to another host refused unless allowed."""

from __future__ import annotations

import pytest

from pytest_fluxloop.errors import ConfigError
from pytest_fluxloop.shipping.target import (
    ALLOW_INSECURE_ENV,
    TOKEN_ENV,
    CollectorSettingError,
    collector_target,
    is_loopback_host,
)

TOKEN = "target-token-0123456789"


def test_a_url_with_a_path_prefix_posts_under_it() -> None:
    target = collector_target("https://collector.example.com/fluxloop/", token=TOKEN)
    assert target.url == "https://collector.example.com/fluxloop"
    assert (target.scheme, target.host, target.port) == ("https", "collector.example.com", 443)
    assert target.batches_path == "/fluxloop/api/v1/batches"
    assert target.batches_url == "https://collector.example.com/fluxloop/api/v1/batches"


def test_ports_and_ipv6_hosts() -> None:
    assert collector_target("http://127.0.0.1:8123", environ={}).port == 8123
    assert collector_target("http://localhost", environ={}).port == 80
    target = collector_target("http://[::1]:9000", environ={})
    assert (target.host, target.port, target.batches_path) == ("::1", 9000, "/api/v1/batches")


@pytest.mark.parametrize(
    "url", ["localhost:8000", "ftp://host/x", "http://", "not a url", "http://[::1", "", "http:x"]
)
def test_not_an_http_url_names_the_setting(url: str) -> None:
    with pytest.raises(CollectorSettingError) as info:
        collector_target(url, url_setting="configs/project.yaml: collector_url")
    message = str(info.value)
    assert message.startswith("configs/project.yaml: collector_url must be an http:// or https://")
    # Both: a run stops with a usage error, the SDK raises the ValueError it documents.
    assert isinstance(info.value, ConfigError)
    assert isinstance(info.value, ValueError)


def test_a_password_in_the_url_is_refused_without_being_repeated() -> None:
    with pytest.raises(CollectorSettingError) as info:
        collector_target("https://user:hunter2-secret@collector.example.com")
    assert "hunter2-secret" not in str(info.value)
    assert "FLUXLOOP_COLLECTOR_TOKEN" in str(info.value)


@pytest.mark.parametrize("url", ["https://c.example.com/?a=1", "https://c.example.com/#x"])
def test_query_or_fragment_is_refused(url: str) -> None:
    with pytest.raises(CollectorSettingError, match="base address"):
        collector_target(url)


@pytest.mark.parametrize(
    "url",
    ["http://collector.example.com", "http://10.0.0.5:8000", "http://ci-host:8000/x"],
)
def test_plain_http_to_another_host_is_refused_unless_allowed(url: str) -> None:
    with pytest.raises(CollectorSettingError) as info:
        collector_target(
            url,
            token=TOKEN,
            url_setting="--fluxloop-collector-url",
            allow_setting="collector_allow_insecure_http: true in configs/project.yaml",
            environ={},
        )
    message = str(info.value)
    assert message.startswith("--fluxloop-collector-url")
    assert "collector_allow_insecure_http: true in configs/project.yaml" in message
    assert ALLOW_INSECURE_ENV in message
    assert TOKEN not in message
    assert collector_target(url, token=TOKEN, allow_insecure_http=True).url == url
    assert collector_target(url, environ={ALLOW_INSECURE_ENV: "1"}).url == url


@pytest.mark.parametrize(
    "host", ["localhost", "LOCALHOST.", "api.localhost", "127.0.0.1", "127.9.8.7", "::1", "[::1]"]
)
def test_loopback_hosts(host: str) -> None:
    assert is_loopback_host(host)


@pytest.mark.parametrize("host", ["localhost.example.com", "10.0.0.1", "::2", "example", "0.0.0.0"])
def test_other_hosts(host: str) -> None:
    assert not is_loopback_host(host)


def test_https_to_any_host_and_http_to_loopback_are_fine() -> None:
    collector_target("https://collector.example.com", token=TOKEN)
    collector_target("http://127.0.0.1:8000", token=TOKEN)
    collector_target("http://localhost:8000", token=TOKEN)


def test_the_token_comes_from_the_setting_else_the_environment() -> None:
    env = {TOKEN_ENV: "  env-token-987654321  "}
    assert collector_target("http://localhost", environ=env).token == "env-token-987654321"
    assert collector_target("http://localhost", token=TOKEN, environ=env).token == TOKEN
    # "" means "no token": the environment is not read then.
    assert collector_target("http://localhost", token="", environ=env).token is None
    assert collector_target("http://localhost", environ={}).token is None


def test_the_token_goes_in_a_bearer_header_and_nowhere_else() -> None:
    target = collector_target("http://localhost:1", token=TOKEN)
    headers = target.headers(10)
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert headers["Content-Encoding"] == "gzip"
    assert headers["Content-Type"] == "application/json"
    assert TOKEN not in repr(target)
    assert TOKEN not in str(target)
    assert "token=set" in repr(target)
    assert "Authorization" not in collector_target("http://localhost:1", token="").headers(1)


def test_scrub_removes_even_a_short_token() -> None:
    target = collector_target("http://localhost:1", token="abc")
    assert "abc" not in target.scrub("sent abc to the collector")
    long_one = collector_target("http://localhost:1", token=TOKEN)
    assert TOKEN not in long_one.scrub(f"Authorization: Bearer {TOKEN} rejected")


@pytest.mark.parametrize("token", ["line\nbreak-token", "nul\0token-xx", "emoji-token-☃☃☃"])
def test_a_token_that_cannot_be_a_header_is_refused_without_being_shown(token: str) -> None:
    with pytest.raises(CollectorSettingError) as info:
        collector_target("http://localhost", token=token, token_setting="project.yaml: key")
    assert str(info.value).startswith("project.yaml: key")
    assert token not in str(info.value)
