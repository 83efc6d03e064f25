"""Cassette files: the JSON format, reading every kind of broken file as one clear error, and
writing with a secret scan, atomically (``pytest_fluxloop.cassettes.files`` and ``.model``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from support.cassette_helpers import cassette, chat_body, interaction, tmp_files

from pytest_fluxloop.cassettes.errors import CassetteError
from pytest_fluxloop.cassettes.files import SecretFound, read_cassette, write_cassette
from pytest_fluxloop.cassettes.model import FORMAT_KEY, FORMAT_VERSION, Cassette
from pytest_fluxloop.errors import ConfigError
from pytest_fluxloop.redact import Redactor

REDACTOR = Redactor(include_env=False)


def sample() -> Cassette:
    stream = {
        "status": 200,
        "content_type": "text/event-stream",
        "events": [{"json": {"choices": []}}, {"data": "[DONE]"}],
        "complete": True,
    }
    return cassette(
        interaction(chat_body("héllo wörld"), reply="bonjour"),
        interaction(chat_body("again"), index=1, response=stream),
        interaction(
            {"model": "claude-judge", "max_tokens": 5, "messages": []},
            role="judge",
            provider="anthropic",
            endpoint="/v1/messages",
            response={"status": 201, "content_type": "text/plain", "text": "fine"},
        ),
    )


# --------------------------------------------------------------------------- the format


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "exp" / "case.json"  # folders are made
    original = sample()
    write_cassette(path, original, REDACTOR)
    back = read_cassette(path)
    assert back.to_json() == original.to_json()
    assert back.interactions == original.interactions
    assert back.case_id == original.case_id and back.experiment == original.experiment
    assert back.recorded_with == original.recorded_with
    assert back.models() == {"agent": ["gpt-test"], "judge": ["claude-judge"]}
    assert [i.position for i in back.interactions] == ["agent/0/0", "agent/0/1", "judge/0/0"]


def test_file_is_pretty_stable_json(tmp_path: Path) -> None:
    path = tmp_path / "case.json"
    write_cassette(path, sample(), REDACTOR)
    text = path.read_text(encoding="utf-8")
    assert text.startswith('{\n  "fluxloop_cassette": 1,\n')
    assert text.endswith("}\n") and not text.endswith("\n\n")
    assert "héllo wörld" in text  # not \u-escaped: reviewable in a diff
    data = json.loads(text)
    assert data[FORMAT_KEY] == FORMAT_VERSION == 1
    assert list(data) == [
        FORMAT_KEY,
        "experiment",
        "case_id",
        "iteration",
        "recorded_with",
        "models",
        "interactions",
    ]
    assert data["models"] == {"agent": ["gpt-test"], "judge": ["claude-judge"]}
    # Writing the same cassette again gives the same bytes.
    write_cassette(path, sample(), REDACTOR)
    assert path.read_text(encoding="utf-8") == text


def test_headers_are_never_stored(tmp_path: Path) -> None:
    path = tmp_path / "case.json"
    write_cassette(path, sample(), REDACTOR)
    text = path.read_text(encoding="utf-8").lower()
    assert "authorization" not in text and "headers" not in text


# --------------------------------------------------------------------------- broken files


def _broken(tmp_path: Path, content: str | bytes) -> Path:
    path = tmp_path / "broken-case.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def _read_error(path: Path) -> str:
    with pytest.raises(CassetteError) as info:
        read_cassette(path)
    message = str(info.value)
    assert str(path) in message
    assert "--fluxloop-cassettes rewrite" in message
    return message


def test_corrupt_json(tmp_path: Path) -> None:
    message = _read_error(_broken(tmp_path, "{this is not json"))
    assert "not valid JSON" in message


def test_truncated_file(tmp_path: Path) -> None:
    text = sample().dumps()
    message = _read_error(_broken(tmp_path, text[: len(text) // 2]))
    assert "corrupt or truncated" in message


def test_empty_file(tmp_path: Path) -> None:
    assert "not valid JSON" in _read_error(_broken(tmp_path, ""))


def test_not_utf8(tmp_path: Path) -> None:
    message = _read_error(_broken(tmp_path, b'{"fluxloop_cassette": 1, "x": "\xff\xfe"}'))
    assert "not UTF-8" in message


@pytest.mark.parametrize("content", ['{"hello": 1}', "[1, 2]", '"text"', "null"])
def test_not_a_cassette(tmp_path: Path, content: str) -> None:
    assert "not a FluxLoop cassette" in _read_error(_broken(tmp_path, content))


@pytest.mark.parametrize("version", [2, 0, "1", None])
def test_unknown_format_version(tmp_path: Path, version: Any) -> None:
    data = sample().to_json()
    data[FORMAT_KEY] = version
    message = _read_error(_broken(tmp_path, json.dumps(data)))
    assert f"format version {version!r}" in message
    assert "this release reads version 1" in message


def test_cassette_error_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        read_cassette(_broken(tmp_path, "{"))


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.json"
    with pytest.raises(CassetteError, match="cannot be read") as info:
        read_cassette(path)
    assert str(path) in str(info.value)


def _first(data: dict[str, Any]) -> dict[str, Any]:
    first: dict[str, Any] = data["interactions"][0]
    return first


def _without_key(data: dict[str, Any]) -> None:
    del _first(data)["key"]


def _server_error(data: dict[str, Any]) -> None:
    _first(data)["response"]["status"] = 500


def _redirect(data: dict[str, Any]) -> None:
    _first(data)["response"]["status"] = 302


def _two_bodies(data: dict[str, Any]) -> None:
    _first(data)["response"]["text"] = "also"


def _no_body(data: dict[str, Any]) -> None:
    del _first(data)["response"]["json"]


def _events_not_list(data: dict[str, Any]) -> None:
    response = _first(data)["response"]
    del response["json"]
    response["events"] = {"event": "x"}


def _negative_turn(data: dict[str, Any]) -> None:
    _first(data)["turn"] = -1


def _bool_index(data: dict[str, Any]) -> None:
    _first(data)["index"] = True


def _request_not_object(data: dict[str, Any]) -> None:
    _first(data)["request"] = "hi"


def _interaction_not_object(data: dict[str, Any]) -> None:
    data["interactions"].append(3)


def _interactions_missing(data: dict[str, Any]) -> None:
    del data["interactions"]


def _case_id_missing(data: dict[str, Any]) -> None:
    del data["case_id"]


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        (_without_key, "interactions[0].key is missing"),
        (_server_error, "interactions[0].response.status must be a 2xx"),
        (_redirect, "interactions[0].response.status must be a 2xx"),
        (_two_bodies, "interactions[0].response needs exactly one of json, text, events"),
        (_no_body, "interactions[0].response needs exactly one of json, text, events"),
        (_events_not_list, "interactions[0].response.events is not a list"),
        (_negative_turn, "interactions[0].turn is missing or not a whole number"),
        (_bool_index, "interactions[0].index is missing or not a whole number"),
        (_request_not_object, "interactions[0].request is missing or not an object"),
        (_interaction_not_object, "interactions[3] is not an object"),
        (_interactions_missing, "interactions is missing or not a list"),
        (_case_id_missing, "case_id is missing"),
    ],
)
def test_malformed_interaction(tmp_path: Path, damage: Any, said: str) -> None:
    data = sample().to_json()
    damage(data)
    message = _read_error(_broken(tmp_path, json.dumps(data)))
    assert said in message


# --------------------------------------------------------------------------- the secret scan


def _with_content(text: str) -> Cassette:
    return cassette(interaction(chat_body(text)))


def _refused(tmp_path: Path, doc: Cassette, redactor: Redactor = REDACTOR) -> str:
    path = tmp_path / "case.json"
    with pytest.raises(SecretFound) as info:
        write_cassette(path, doc, redactor)
    assert not path.exists()
    assert tmp_files(tmp_path) == []
    message = str(info.value)
    assert str(path) in message and "not written" in message
    return message


def test_key_shape_in_a_prompt_is_refused(tmp_path: Path) -> None:
    secret = "sk-proj-" + "A1b2C3d4" * 4
    message = _refused(tmp_path, _with_content(f"my key is {secret}, please use it"))
    assert "interactions[0].request.messages[0].content" in message
    assert secret not in message and "A1b2C3d4" not in message


def test_bearer_token_in_a_reply_is_refused(tmp_path: Path) -> None:
    token = "abcdef0123456789xyz"
    doc = cassette(interaction(chat_body("what header?"), reply=f"send Bearer {token}"))
    message = _refused(tmp_path, doc)
    assert "interactions[0].response.json.choices[0].message.content" in message
    assert token not in message


def test_the_current_api_key_value_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    value = "plainvalue-not-shaped-9931"  # no known key shape: found as the env's value
    monkeypatch.setenv("OPENAI_API_KEY", value)
    doc = _with_content(f"the config says {value}")
    # Without the environment it is ordinary text.
    write_cassette(tmp_path / "ok" / "case.json", doc, Redactor(include_env=False))
    message = _refused(tmp_path, doc, Redactor())
    assert "interactions[0].request.messages[0].content" in message
    assert value not in message


@pytest.mark.parametrize("key", ["api_key", "password", "Authorization", "x-api-key"])
def test_a_value_under_a_secret_key_is_refused(tmp_path: Path, key: str) -> None:
    doc = cassette(interaction(chat_body("hi", metadata={key: "short"})))
    message = _refused(tmp_path, doc)
    assert f"interactions[0].request.metadata.{key}" in message
    assert "short" not in message


def test_many_secrets_are_counted_not_all_listed(tmp_path: Path) -> None:
    metadata = {f"secret_{n}": "value" for n in range(8)}
    message = _refused(tmp_path, cassette(interaction(chat_body("hi", metadata=metadata))))
    assert "interactions[0].request.metadata.secret_4" in message
    assert "secret_5" not in message
    assert "and 3 more" in message


def test_a_refused_write_leaves_the_existing_file_untouched(tmp_path: Path) -> None:
    path = tmp_path / "case.json"
    write_cassette(path, sample(), REDACTOR)
    before = path.read_bytes()
    with pytest.raises(SecretFound):
        write_cassette(path, _with_content("sk-" + "x" * 40), REDACTOR)
    assert path.read_bytes() == before
    assert tmp_files(tmp_path) == []


def test_benign_token_counts_and_empty_secret_keys_write(tmp_path: Path) -> None:
    body = chat_body(
        "count my tokens",
        max_tokens=50,
        max_completion_tokens=60,
        metadata={"api_key": "", "password": None, "token_usage": "high", "sort_key": "a"},
    )
    response = {
        "status": 200,
        "content_type": "application/json",
        "json": {"usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}},
    }
    path = tmp_path / "case.json"
    write_cassette(path, cassette(interaction(body, response=response)), REDACTOR)
    back = read_cassette(path)
    assert back.interactions[0].request["max_tokens"] == 50
    assert back.interactions[0].request["metadata"]["token_usage"] == "high"
    assert back.interactions[0].response["json"]["usage"]["prompt_tokens"] == 3


# --------------------------------------------------------------------------- atomic writes


def test_a_rewrite_replaces_the_file_leaving_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "case.json"
    write_cassette(path, sample(), REDACTOR)
    write_cassette(path, _with_content("second version"), REDACTOR)
    assert read_cassette(path).interactions[0].request["messages"][0]["content"] == (
        "second version"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["case.json"]


def test_a_write_that_fails_half_way_leaves_the_old_file_and_no_temporary(
    tmp_path: Path,
) -> None:
    path = tmp_path / "case.json"
    write_cassette(path, sample(), REDACTOR)
    before = path.read_bytes()
    broken = _with_content("fine")
    broken.interactions[0].response["json"]["unserialisable"] = object()
    with pytest.raises((TypeError, ValueError)):
        write_cassette(path, broken, REDACTOR)
    assert path.read_bytes() == before
    assert tmp_files(tmp_path) == []


def test_an_unwritable_place_is_a_cassette_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file", encoding="utf-8")
    path = blocker / "case.json"
    with pytest.raises(CassetteError, match="cannot be written") as info:
        write_cassette(path, sample(), REDACTOR)
    assert str(path) in str(info.value)
