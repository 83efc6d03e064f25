"""The recording file reader (plan/recordings.py): line shapes, damage, versions, targets, paths."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pytest_fluxloop.errors import ConfigError
from pytest_fluxloop.plan import ArgPath, RecordedCall, Recordings, read_recordings
from pytest_fluxloop.sdk.recording import write_call_record

TARGET = "app.ws:handle"


def write_lines(path: Path, *lines: Any, end: str = "\n") -> Path:
    """One line per item: dicts as JSON, strings as they are."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join(item if isinstance(item, str) else json.dumps(item) for item in lines)
    path.write_text(text + end, encoding="utf-8")
    return path


def send(message: Any) -> None:  # recorded as a callable placeholder
    pass


# --------------------------------------------------------------------------- line shapes


def test_reads_our_lines_written_by_the_sdk(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl"
    write_call_record(path, TARGET, (), {"data": {"content": "hi"}, "send": send}, iteration=3)
    write_call_record(path, TARGET, ("positional",), {"data": {"content": "again"}})

    recordings = read_recordings(path)

    assert recordings.path == path
    assert recordings.warnings == []
    first, second = recordings.calls
    assert isinstance(first, RecordedCall)
    assert (first.line, first.version, first.target, first.iteration) == (1, "1", TARGET, 3)
    assert first.args == []
    assert first.kwargs == {
        "data": {"content": "hi"},
        "send": {"__fluxloop__": "callable", "name": "send"},
    }
    assert first.timestamp and first.timestamp.endswith("Z")
    assert (second.line, second.args, second.iteration) == (2, ["positional"], None)


def test_reads_the_earlier_sdk_lines_without_args(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "rec.jsonl",
        {
            "_version": "1",
            "iteration": 0,
            "target": TARGET,
            "kwargs": {"data": {"content": "hi"}, "send": "<callable:send>"},
            "timestamp": "2025-01-17T14:30:22.123456",
        },
    )
    (call,) = read_recordings(path).calls
    assert call.args == []
    assert call.kwargs["send"] == "<callable:send>"  # kept as recorded; the engine revives it
    assert (call.version, call.target, call.iteration) == ("1", TARGET, 0)
    assert call.timestamp == "2025-01-17T14:30:22.123456"


def test_reads_the_documented_example_as_version_1_with_no_target(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "rec.jsonl",
        {"args": [], "kwargs": {"data": {"content": "user message"}}, "timestamp": "2025-01-17Z"},
        {"args": [], "kwargs": {"data": {"content": "another"}}, "timestamp": "2025-01-17Z"},
    )
    calls = read_recordings(path).calls
    assert [(c.version, c.target, c.iteration) for c in calls] == [("1", None, None)] * 2
    assert [c.kwargs["data"]["content"] for c in calls] == ["user message", "another"]


def test_blank_lines_are_skipped_and_lines_keep_their_numbers(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "r.jsonl", "", {"kwargs": {"a": 1}}, "   ", {"kwargs": {"a": 2}})
    assert [c.line for c in read_recordings(path).calls] == [2, 4]


def test_an_integer_version_is_version_1(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "r.jsonl", {"_version": 1, "kwargs": {}})
    assert read_recordings(path).calls[0].version == "1"


# --------------------------------------------------------------------------- damage


def test_a_truncated_last_line_is_skipped_with_a_warning_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl"
    write_call_record(path, TARGET, (), {"data": {"content": "one"}})
    write_call_record(path, TARGET, (), {"data": {"content": "two"}})
    with path.open("a", encoding="utf-8") as handle:
        handle.write('{"_version": "1", "target": "app.ws:handle", "kwargs": {"da')  # crash

    recordings = read_recordings(path)

    assert [c.kwargs["data"]["content"] for c in recordings.calls] == ["one", "two"]
    (warning,) = recordings.warnings
    assert str(path) in warning and "line 3" in warning and "skipped" in warning


def test_a_last_line_cut_inside_a_multibyte_character_is_a_cut_off_line(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl"
    write_call_record(path, TARGET, (), {"data": {"content": "ok"}})
    partial = json.dumps({"kwargs": {"text": "日本"}}, ensure_ascii=False).encode()
    with path.open("ab") as handle:
        handle.write(partial[: partial.index("本".encode()) + 1])
    recordings = read_recordings(path)
    assert len(recordings.calls) == 1
    assert "line 2" in recordings.warnings[0]


def test_a_bad_line_before_the_last_is_an_error_naming_file_and_line(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "rec.jsonl", {"kwargs": {}}, '{"kwargs": {', {"kwargs": {}})
    with pytest.raises(ConfigError) as info:
        read_recordings(path)
    message = str(info.value)
    assert f"{path}, line 2" in message and "not valid JSON" in message


def test_an_unknown_version_is_an_error_listing_the_supported_ones(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "rec.jsonl", {"kwargs": {}}, {"_version": "2", "kwargs": {}})
    with pytest.raises(ConfigError) as info:
        read_recordings(path)
    message = str(info.value)
    assert f"{path}, line 2" in message
    assert "_version '2' is not supported" in message and "reads _version 1" in message


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("[1, 2]", ["must be a JSON object", "a list"]),
        ('"text"', ["must be a JSON object", "a string"]),
        ('{"timestamp": "x"}', ["neither 'args' nor 'kwargs'", "timestamp"]),
        ('{"args": {"a": 1}}', ["'args' must be a JSON list"]),
        ('{"kwargs": [1]}', ["'kwargs' must be a JSON object"]),
        ('{"kwargs": {}, "target": 3}', ["'target' must be a string"]),
    ],
    ids=["list", "string", "no-arguments", "args-object", "kwargs-list", "target-number"],
)
def test_a_line_that_is_not_a_recorded_call_is_an_error(
    tmp_path: Path, line: str, words: list[str]
) -> None:
    path = write_lines(tmp_path / "rec.jsonl", line, {"kwargs": {}})
    with pytest.raises(ConfigError) as info:
        read_recordings(path)
    assert f"{path}, line 1" in str(info.value)
    for word in words:
        assert word in str(info.value)


def test_a_missing_file_is_an_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "recordings" / "none.jsonl"
    with pytest.raises(ConfigError) as info:
        read_recordings(path)
    assert str(path) in str(info.value) and "does not exist" in str(info.value)


def test_a_directory_is_not_a_recording_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is not a file"):
        read_recordings(tmp_path)


@pytest.mark.parametrize("text", ["", "\n\n  \n"], ids=["empty", "blank-lines"])
def test_an_empty_file_is_an_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "rec.jsonl"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        read_recordings(path)
    assert str(path) in str(info.value) and "holds no recorded calls" in str(info.value)


def test_a_file_whose_only_line_is_cut_off_is_an_error_saying_so(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "rec.jsonl", '{"kwargs": {"a"', end="")
    with pytest.raises(ConfigError) as info:
        read_recordings(path)
    assert "holds no recorded calls" in str(info.value) and "line 1" in str(info.value)


def test_more_calls_than_the_cap_is_a_clear_error(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "rec.jsonl", *([{"kwargs": {}}] * 4))
    assert len(read_recordings(path, max_calls=4).calls) == 4
    with pytest.raises(ConfigError) as info:
        read_recordings(path, max_calls=3)
    assert "more than 3 recorded calls" in str(info.value) and "line 4" in str(info.value)


# --------------------------------------------------------------------------- targets


def _recordings(tmp_path: Path, *targets: str | None) -> Recordings:
    lines = [{"target": t, "kwargs": {"n": i}} for i, t in enumerate(targets)]
    return read_recordings(write_lines(tmp_path / "rec.jsonl", *lines))


def test_calls_for_the_target_and_calls_without_a_target_match(tmp_path: Path) -> None:
    recordings = _recordings(tmp_path, TARGET, None, TARGET)
    matched = recordings.calls_for(TARGET)
    assert [c.kwargs["n"] for c in matched.calls] == [0, 1, 2]
    assert matched.warnings == []
    assert recordings.targets() == {TARGET: 2, None: 1}


def test_recordings_only_for_another_target_are_an_error_listing_the_targets(
    tmp_path: Path,
) -> None:
    recordings = _recordings(tmp_path, "app.ws:other", "app.ws:other", "billing:charge")
    with pytest.raises(ConfigError) as info:
        recordings.calls_for(TARGET)
    message = str(info.value)
    assert str(recordings.path) in message and repr(TARGET) in message
    assert "'app.ws:other' (2 calls)" in message and "'billing:charge' (1 call)" in message


def test_calls_for_other_targets_in_a_shared_file_are_left_out_with_a_warning(
    tmp_path: Path,
) -> None:
    matched = _recordings(tmp_path, TARGET, "billing:charge", TARGET).calls_for(TARGET)
    assert [c.kwargs["n"] for c in matched.calls] == [0, 2]
    (warning,) = matched.warnings
    assert "1 recorded call(s) for other targets" in warning and "'billing:charge'" in warning


def test_a_main_recording_matches_the_function_of_the_same_name_with_a_notice(
    tmp_path: Path,
) -> None:
    matched = _recordings(tmp_path, "__main__:handle", "__main__:handle").calls_for(TARGET)
    assert len(matched.calls) == 2
    (warning,) = matched.warnings
    assert "'__main__:handle'" in warning and "ran as a script" in warning
    assert repr(TARGET) in warning
    # Another function of __main__ is another function.
    with pytest.raises(ConfigError, match="'__main__:other'"):
        _recordings(tmp_path, "__main__:other").calls_for(TARGET)


def test_the_reader_warnings_carry_over_to_the_matched_calls(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "rec.jsonl", {"target": TARGET, "kwargs": {}}, '{"kw', end="")
    matched = read_recordings(path).calls_for(TARGET)
    assert len(matched.warnings) == 1 and "line 2" in matched.warnings[0]


# --------------------------------------------------------------------------- override paths


def _call(args: list[Any] | None = None, **kwargs: Any) -> RecordedCall:
    return RecordedCall(line=7, version="1", target=None, args=args or [], kwargs=kwargs)


def test_a_path_places_a_value_in_kwargs_lists_and_positional_args() -> None:
    args: list[Any] = [{"text": "old"}]
    kwargs: dict[str, Any] = {
        "data": {"content": "old"},
        "messages": [{"content": "a"}, {"content": "b"}],
    }
    for text in ("data.content", "messages.0.content", "messages.-1.content", "args.0.text"):
        path = ArgPath.parse(text)
        assert path.problem(args, kwargs) is None
        path.assign(args, kwargs, f"new {text}")
    assert kwargs["data"] == {"content": "new data.content"}
    assert kwargs["messages"] == [
        {"content": "new messages.0.content"},
        {"content": "new messages.-1.content"},
    ]
    assert args == [{"text": "new args.0.text"}]


def test_a_keyword_argument_named_args_wins_over_positional_args() -> None:
    kwargs: dict[str, Any] = {"args": {"q": "old"}}
    path = ArgPath.parse("args.q")
    assert path.problem([], kwargs) is None
    path.assign([], kwargs, "new")
    assert kwargs == {"args": {"q": "new"}}


@pytest.mark.parametrize("text", ["", "data..content", ".data", "data."])
def test_a_malformed_path_is_an_error(text: str) -> None:
    with pytest.raises(ConfigError, match="not a dot path"):
        ArgPath.parse(text)


@pytest.mark.parametrize(
    ("text", "call", "words"),
    [
        (
            "data.contnet",
            _call(data={"content": "x", "user": "u"}),
            ["data has no key 'contnet' (its keys: content, user)", "data.content"],
        ),
        ("dta.content", _call(data={"content": "x"}), ["no argument named 'dta'", "data.content"]),
        ("messages.5.content", _call(messages=[{"content": "x"}]), ["1 item(s), no index 5"]),
        ("messages.first", _call(messages=[{"content": "x"}]), ["is a list; 'first'"]),
        ("data.content.text", _call(data={"content": "x"}), ["data.content is a string"]),
        (
            "send.name",
            _call(send={"__fluxloop__": "callable", "name": "send"}),
            ["send is a recorded callable"],
        ),
        ("args.1", _call(["only"]), ["args has 1 item(s), no index 1", "args.0"]),
    ],
    ids=["key", "argument", "index", "not-index", "scalar", "placeholder", "positional"],
)
def test_a_path_missing_from_a_call_names_the_line_and_the_nearest_paths(
    tmp_path: Path, text: str, call: RecordedCall, words: list[str]
) -> None:
    source = tmp_path / "rec.jsonl"
    with pytest.raises(ConfigError) as info:
        ArgPath.parse(text).check([call], source)
    message = str(info.value)
    assert f"override_param_path {text!r}" in message
    assert f"{source}, line 7" in message and "Nearest paths that exist:" in message
    for word in words:
        assert word in message


def test_every_call_must_hold_the_path(tmp_path: Path) -> None:
    good = _call(data={"content": "x"})
    bad = RecordedCall(line=9, version="1", target=None, args=[], kwargs={"data": {}})
    with pytest.raises(ConfigError, match=r"line 9: data has no key 'content'"):
        ArgPath.parse("data.content").check([good, bad], tmp_path / "r.jsonl")


def test_a_positional_argument_is_found_by_its_parameter_name(tmp_path: Path) -> None:
    """Our SDK records which parameter each positional argument went to (``arg_names``), so
    ``data.content`` reaches a ``data`` the application passed positionally."""
    path = tmp_path / "r.jsonl"
    write_call_record(
        path, "app:handle", ({"content": "hi", "meta": {"id": 1}}, "conn-1"),
        {"token": "t"}, arg_names=("data", "connection"),
    )  # fmt: skip
    (call,) = read_recordings(path).calls
    assert call.arg_names == ["data", "connection"]
    arg_path = ArgPath.parse("data.content")
    assert arg_path.problem(call.args, call.kwargs, call.arg_names) is None
    args, kwargs = list(call.args), dict(call.kwargs)
    arg_path.assign(args, kwargs, "replayed", call.arg_names)
    assert args[0]["content"] == "replayed" and "data" not in kwargs
    with pytest.raises(ConfigError) as info:
        ArgPath.parse("data.contnet").check([call], path)
    assert "data.content" in str(info.value)  # suggestions use the parameter's name
