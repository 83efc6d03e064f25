"""``@agent`` records its calls' arguments when recording is on: the switch (environment,
``.env``, ``configure``), the line (target, args, kwargs, placeholders), secrets never on
disk, allow/deny lists, no recording inside experiment cases, rotation, and appends that
stay whole across threads and processes."""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from support.sdk_helpers import fresh_sdk

import fluxloop
from pytest_fluxloop.redact import REDACTED
from pytest_fluxloop.sdk import decorators, jsonl, recording, settings, trace_context
from pytest_fluxloop.sdk.settings import RECORDING

DEFAULT_FILE = Path("recordings") / "args_recording.jsonl"


@pytest.fixture(autouse=True)
def _clean_sdk_state(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Each test starts without FLUXLOOP_* variables, in an empty cwd, recording undecided."""
    fresh_sdk(monkeypatch, tmp_path)
    monkeypatch.setattr(recording, "_warned", False)
    recording._iterations.clear()
    yield
    recording._iterations.clear()
    settings.set_recording_override(None)
    settings._config = None  # rebuilt lazily from the environment monkeypatch restores
    RECORDING.on = None


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _target(fn: Any) -> str:
    return f"{fn.__module__}:{fn.__qualname__}"


@fluxloop.agent()
def handle(message: str, data: Any = None, *extra: Any, **options: Any) -> str:
    return f"ok:{message}"


# --------------------------------------------------------------------------- the switch


@pytest.mark.parametrize("value", ["true", "1", "yes", "on", "TRUE"])
def test_environment_variable_turns_recording_on(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, value: str
) -> None:
    monkeypatch.setenv("FLUXLOOP_RECORD_ARGS", value)
    fluxloop.reset_config()
    assert handle("hi", {"content": "x"}, flag=True) == "ok:hi"
    (line,) = _lines(tmp_path / DEFAULT_FILE)
    assert list(line) == [
        "_version",
        "target",
        "iteration",
        "args",
        "kwargs",
        "timestamp",
        "arg_names",
    ]
    assert line["arg_names"] == ["message", "data"]  # so replay finds data.content by name
    assert line["_version"] == "1"
    assert line["target"] == _target(handle) == f"{__name__}:handle"
    assert line["iteration"] == 0
    assert line["args"] == ["hi", {"content": "x"}]
    assert line["kwargs"] == {"flag": True}
    assert line["timestamp"].endswith("Z")


@pytest.mark.parametrize("value", [None, "false", "0", "no", "off", ""])
def test_recording_is_off_unless_asked(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, value: str | None
) -> None:
    if value is not None:
        monkeypatch.setenv("FLUXLOOP_RECORD_ARGS", value)
    fluxloop.reset_config()
    assert handle("hi") == "ok:hi"
    assert RECORDING.on is False
    assert list(tmp_path.iterdir()) == []


def test_dotenv_in_cwd_turns_recording_on_without_touching_the_environment(
    tmp_path: Path,
) -> None:
    (tmp_path / ".env").write_text(
        "FLUXLOOP_RECORD_ARGS=true\nFLUXLOOP_RECORDING_FILE=rec/calls.jsonl\n"
        "SOME_OTHER_VARIABLE=from-file\n",
        encoding="utf-8",
    )
    fluxloop.reset_config()
    handle("from dotenv")
    (line,) = _lines(tmp_path / "rec" / "calls.jsonl")
    assert line["args"] == ["from dotenv"]
    # Read, not loaded: the process environment gains nothing from the file.
    assert "FLUXLOOP_RECORD_ARGS" not in os.environ
    assert "SOME_OTHER_VARIABLE" not in os.environ


def test_dotenv_never_overrides_a_variable_already_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text("FLUXLOOP_RECORD_ARGS=true\n", encoding="utf-8")
    monkeypatch.setenv("FLUXLOOP_RECORD_ARGS", "false")
    fluxloop.reset_config()
    handle("hi")
    assert RECORDING.on is False
    assert not (tmp_path / "recordings").exists()


def test_dotenv_is_read_once_while_unchanged(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import dotenv

    reads: list[Any] = []
    real = dotenv.dotenv_values

    def counting(*args: Any, **kwargs: Any) -> Any:
        reads.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(dotenv, "dotenv_values", counting)
    (tmp_path / ".env").write_text("FLUXLOOP_RECORD_ARGS=true\n", encoding="utf-8")
    for _ in range(3):
        fluxloop.reset_config()
        handle("hi")
    assert len(reads) == 1
    assert len(_lines(tmp_path / DEFAULT_FILE)) == 3


def test_an_unreadable_dotenv_is_ignored(tmp_path: Path) -> None:
    (tmp_path / ".env").write_bytes(b"FLUXLOOP_RECORD_ARGS=\xff\xfe true\n")
    fluxloop.reset_config()
    assert handle("hi") == "ok:hi"
    with trace_context("t") as ctx:
        handle("in a case")
    assert len(ctx.observations) == 2


def test_configure_and_enable_disable_switch_recording(tmp_path: Path) -> None:
    out = tmp_path / "c.jsonl"
    handle("before")  # decided: off
    assert RECORDING.on is False
    fluxloop.configure(record_args=True, recording_file=str(out))
    handle("configured")
    fluxloop.disable_recording()
    handle("disabled")
    fluxloop.enable_recording(out)
    handle("enabled")
    fluxloop.reset_config()
    handle("reset")
    assert [r["args"] for r in _lines(out)] == [["configured"], ["enabled"]]


def test_the_decision_is_cached_until_something_changes_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    handle("a")
    assert RECORDING.on is False
    monkeypatch.setenv("FLUXLOOP_RECORD_ARGS", "true")
    handle("b")  # the environment alone is not re-read on every call
    assert not (tmp_path / DEFAULT_FILE).exists()
    fluxloop.reset_config()
    assert RECORDING.on is None
    handle("c")
    assert RECORDING.on is True
    assert [r["args"] for r in _lines(tmp_path / DEFAULT_FILE)] == [["c"]]


def test_load_env_drops_the_cached_decision(tmp_path: Path) -> None:
    handle("a")
    assert RECORDING.on is False
    env = tmp_path / "custom.env"
    env.write_text("FLUXLOOP_RECORD_ARGS=true\n", encoding="utf-8")
    try:
        assert fluxloop.load_env(env) is True
        assert RECORDING.on is None
        handle("b")
        assert [r["args"] for r in _lines(tmp_path / DEFAULT_FILE)] == [["b"]]
    finally:
        os.environ.pop("FLUXLOOP_RECORD_ARGS", None)


def test_disabled_path_is_one_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """With recording off (once decided) neither @agent nor record_call_args go further than
    the cached switch. Its cost is measured, not asserted: see the module docstring of
    pytest_fluxloop.sdk.recording."""
    handle("decide")
    assert RECORDING.on is False

    def must_not_run(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("recording work done with recording off")

    monkeypatch.setattr(decorators, "record_agent_call", must_not_run)
    monkeypatch.setattr(recording, "_write", must_not_run)
    monkeypatch.setattr(recording, "current_trace", must_not_run)
    assert handle("x") == "ok:x"
    assert fluxloop.record_call_args("t", x=1) is None


# --------------------------------------------------------------------------- the lines


def _on(tmp_path: Path, **settings_: Any) -> Path:
    out = tmp_path / "args.jsonl"
    fluxloop.configure(record_args=True, recording_file=str(out), **settings_)
    return out


def test_every_kind_of_agent_records_one_line_per_call(tmp_path: Path) -> None:
    out = _on(tmp_path)

    @fluxloop.agent()
    def sync_agent(text: str, *, lang: str = "en") -> str:
        return text

    @fluxloop.agent(name="named")
    async def async_agent(text: str, *, lang: str = "en") -> str:
        return text

    @fluxloop.agent
    def gen_agent(text: str, *, lang: str = "en") -> Iterator[str]:
        yield text
        yield text

    @fluxloop.agent()
    async def agen_agent(text: str, *, lang: str = "en") -> AsyncIterator[str]:
        yield text

    async def consume() -> list[str]:
        return [item async for item in agen_agent("d", lang="fr")]

    assert sync_agent("a", lang="fr") == "a"
    assert asyncio.run(async_agent("b", lang="fr")) == "b"
    assert list(gen_agent("c", lang="fr")) == ["c", "c"]
    assert asyncio.run(consume()) == ["d"]
    assert sync_agent("e") == "e"

    lines = _lines(out)
    assert [(r["target"], r["args"], r["kwargs"], r["iteration"]) for r in lines] == [
        (_target(sync_agent), ["a"], {"lang": "fr"}, 0),
        (_target(async_agent), ["b"], {"lang": "fr"}, 0),
        (_target(gen_agent), ["c"], {"lang": "fr"}, 0),
        (_target(agen_agent), ["d"], {"lang": "fr"}, 0),
        (_target(sync_agent), ["e"], {}, 1),
    ]
    assert lines[0]["target"].endswith(
        ":test_every_kind_of_agent_records_one_line_per_call.<locals>.sync_agent"
    )


SCRIPT = textwrap.dedent(
    """
    import fluxloop

    @fluxloop.agent()
    def run(message):
        return message

    if __name__ == "__main__":
        run("from a script")
    """
)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [(["app/main.py"], "app.main:run"), (["-m", "app.main"], "app.main:run")],
)
def test_a_script_run_as_main_records_its_module_name(
    tmp_path: Path, argv: list[str], expected: str
) -> None:
    """``python app/main.py`` must record what ``runner.target`` names, not ``__main__``."""
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "__init__.py").write_text("", encoding="utf-8")
    (tmp_path / "app" / "main.py").write_text(SCRIPT, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLUXLOOP_")}
    env["FLUXLOOP_RECORD_ARGS"] = "true"
    proc = subprocess.run(
        [sys.executable, *argv], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    (line,) = _lines(tmp_path / DEFAULT_FILE)
    assert (line["target"], line["args"]) == (expected, ["from a script"])


def test_only_agents_record_not_tools_or_traces(tmp_path: Path) -> None:
    out = _on(tmp_path)

    @fluxloop.tool()
    def lookup(q: str) -> str:
        return q

    @fluxloop.trace(observation_type="agent")
    def traced(q: str) -> str:
        return q

    lookup("x")
    traced("y")
    assert not out.exists()


def test_methods_record_without_self_or_cls(tmp_path: Path) -> None:
    out = _on(tmp_path)

    class Handler:
        @fluxloop.agent()
        async def handle_message(self, connection_id: str, data: dict[str, Any]) -> str:
            return connection_id

        @classmethod
        @fluxloop.agent()
        def build(cls, name: str) -> str:
            return name

    handler = Handler()
    assert asyncio.run(handler.handle_message("c1", data={"content": "hi"})) == "c1"
    assert Handler.build("b") == "b"
    first, second = _lines(out)
    assert first["target"] == _target(Handler.handle_message)
    assert first["target"].endswith("Handler.handle_message")
    assert first["args"] == ["c1"]
    assert first["kwargs"] == {"data": {"content": "hi"}}
    assert second["target"].endswith("Handler.build")
    assert second["args"] == ["b"]


def test_non_json_values_become_typed_placeholders(tmp_path: Path) -> None:
    out = _on(tmp_path)

    def send(text: str) -> None: ...

    with socket.socket() as sock:
        handle("hi", b"\x00\x01\x02", send_message_callback=send, connection=sock)
    (line,) = _lines(out)
    assert line["args"] == ["hi", {"__fluxloop__": "bytes", "length": 3}]
    assert line["kwargs"]["send_message_callback"] == {"__fluxloop__": "callable", "name": "send"}
    assert line["kwargs"]["connection"]["__fluxloop__"] == "object"
    assert line["kwargs"]["connection"]["type"] == "socket.socket"


SECRETS = {
    "api_key": "plain-api-key-value-123",
    "nested_token": "nested-token-value-456",
    "sk": "sk-proj-abcdefghijklmnopqrstuvwxyz012345",
    "bearer": "abcDEF123456ghiJKL7890",
    "env": "value-from-a-secret-env-var",
}


def test_secrets_never_reach_the_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PAYMENTS_SERVICE_TOKEN", SECRETS["env"])
    out = _on(tmp_path)
    handle(
        f"please use {SECRETS['sk']} for this",
        {"user": "ana", "auth": {"token": SECRETS["nested_token"]}},
        f"forwarded: {SECRETS['env']}",
        api_key=SECRETS["api_key"],
        headers={"X-Upstream": f"Bearer {SECRETS['bearer']}", "Accept": "json"},
    )
    text = out.read_text(encoding="utf-8")
    for secret in SECRETS.values():
        assert secret not in text
    (line,) = _lines(out)
    assert line["kwargs"]["api_key"] == REDACTED
    assert line["args"][1]["user"] == "ana"
    assert line["args"][1]["auth"] == REDACTED  # "auth" is itself a secret key
    assert line["kwargs"]["headers"] == {"X-Upstream": f"Bearer {REDACTED}", "Accept": "json"}
    assert line["args"][0] == f"please use {REDACTED} for this"


def test_token_nested_under_an_ordinary_key_is_redacted(tmp_path: Path) -> None:
    out = _on(tmp_path)
    handle("hi", {"session": {"token": SECRETS["nested_token"], "id": 7}})
    (line,) = _lines(out)
    assert line["args"][1] == {"session": {"token": REDACTED, "id": 7}}
    assert SECRETS["nested_token"] not in out.read_text(encoding="utf-8")


def test_deny_list_by_name_and_dotted_path(tmp_path: Path) -> None:
    out = _on(tmp_path, record_deny=["email", "data.ssn", "messages.content"])
    handle(
        "hi",
        {"ssn": "123-45-6789", "content": "keep"},
        email="ana@example.com",
        messages=[{"role": "user", "content": "private"}, {"role": "bot", "content": "x"}],
    )
    (line,) = _lines(out)
    assert line["args"] == ["hi", {"ssn": REDACTED, "content": "keep"}]
    assert line["kwargs"]["email"] == REDACTED
    assert line["kwargs"]["messages"] == [
        {"role": "user", "content": REDACTED},
        {"role": "bot", "content": REDACTED},
    ]


def test_allow_list_keeps_only_named_arguments(tmp_path: Path) -> None:
    out = _on(tmp_path, record_allow="message, data.content, channel")
    handle("hi", {"content": "keep", "ssn": "123"}, "extra", channel="web", email="a@b.c")
    (line,) = _lines(out)
    assert line["args"] == ["hi", {"content": "keep", "ssn": REDACTED}, REDACTED]
    assert line["kwargs"] == {"channel": "web", "email": REDACTED}


def test_allow_and_deny_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FLUXLOOP_RECORD_ARGS", "true")
    monkeypatch.setenv("FLUXLOOP_RECORD_ALLOW", "message,data")
    monkeypatch.setenv("FLUXLOOP_RECORD_DENY", "data.ssn")
    config = fluxloop.reset_config()
    assert config.record_allow == ("message", "data")
    assert config.record_deny == ("data.ssn",)
    handle("hi", {"ssn": "1", "content": "c", "api_key": "abcdefgh12345"}, other=1)
    (line,) = _lines(tmp_path / DEFAULT_FILE)
    assert line["args"] == ["hi", {"ssn": REDACTED, "content": "c", "api_key": REDACTED}]
    assert line["kwargs"] == {"other": REDACTED}


def test_record_call_args_applies_the_lists_too(tmp_path: Path) -> None:
    out = _on(tmp_path, record_deny=["email"])
    fluxloop.record_call_args("app:run", email="a@b.c", message="hi")
    (line,) = _lines(out)
    assert line["kwargs"] == {"email": REDACTED, "message": "hi"}


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("record_allow", "", None),
        ("record_allow", [], None),
        ("record_allow", "a,,b ,", ("a", "b")),
        ("record_deny", None, ()),
        ("record_deny", ("x.y",), ("x.y",)),
        ("recording_max_bytes", "1024", 1024),
        ("recording_backups", 0, 0),
    ],
)
def test_recording_settings_are_coerced(key: str, value: Any, expected: Any) -> None:
    assert getattr(fluxloop.configure(**{key: value}), key) == expected


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("recording_max_bytes", -1),
        ("recording_backups", -2),
        ("record_deny", "data..ssn"),
        ("record_allow", [1]),
        ("record_deny", 5),
    ],
)
def test_bad_recording_settings_are_refused(key: str, value: Any) -> None:
    with pytest.raises(ValueError, match=key):
        fluxloop.configure(**{key: value})


# --------------------------------------------------------------------------- experiments


def test_no_recording_inside_an_experiment_case(tmp_path: Path) -> None:
    out = _on(tmp_path)
    with trace_context("case-1") as ctx:
        assert handle("replayed") == "ok:replayed"
        assert fluxloop.record_call_args("app:run", x=1) is None
    assert not out.exists()
    assert [o.type for o in ctx.observations] == ["span_start", "span_end"]


def test_a_standalone_instrument_block_is_not_a_case(tmp_path: Path) -> None:
    out = _on(tmp_path)
    with fluxloop.instrument("request") as run:
        handle("production")
    assert run.mode == "trace"
    assert [r["args"] for r in _lines(out)] == [["production"]]
    with trace_context("case"), fluxloop.instrument("inside a case"):
        handle("replayed")
    assert len(_lines(out)) == 1


def test_explicit_record_call_args_inside_the_agent_is_not_doubled(tmp_path: Path) -> None:
    out = _on(tmp_path)

    @fluxloop.agent()
    def legacy(message: str) -> str:
        # The earlier SDK recorded by hand, under the agent's own target.
        fluxloop.record_call_args(_target(legacy), message=message)
        fluxloop.record_call_args("other:target", message=message)
        return message

    @fluxloop.agent()
    async def legacy_async(message: str) -> str:
        fluxloop.record_call_args(_target(legacy_async), message=message)
        return message

    legacy("hi")
    asyncio.run(legacy_async("hey"))
    fluxloop.record_call_args(_target(legacy), message="after")  # outside the call: written
    assert [(r["target"], r["args"], r["kwargs"]) for r in _lines(out)] == [
        (_target(legacy), ["hi"], {}),
        ("other:target", [], {"message": "hi"}),
        (_target(legacy_async), ["hey"], {}),
        (_target(legacy), [], {"message": "after"}),
    ]


# --------------------------------------------------------------------------- failures


class ReprRaises:
    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")


class ItemsRaise(Mapping[str, Any]):
    """A mapping the serialiser cannot even list."""

    def __getitem__(self, key: str) -> Any:
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("cannot iterate, secret sk-abcdefghijklmnopqrstuvwxyz")

    def __len__(self) -> int:
        return 1


def test_an_object_whose_repr_raises_is_still_recorded(tmp_path: Path) -> None:
    out = _on(tmp_path)
    assert handle("hi", ReprRaises()) == "ok:hi"
    (line,) = _lines(out)
    assert line["args"][1]["__fluxloop__"] == "object"
    assert "unrepresentable" in line["args"][1]["repr"]


def test_a_serialisation_failure_never_breaks_the_call_and_is_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = _on(tmp_path)
    with caplog.at_level(logging.WARNING, logger="fluxloop"):
        assert handle("one", ItemsRaise()) == "ok:one"
        assert handle("two", ItemsRaise()) == "ok:two"
        assert fluxloop.record_call_args("app:run", data=ItemsRaise()) is None
        assert handle("three") == "ok:three"
    warnings = [r for r in caplog.records if r.name == "fluxloop"]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert "could not record" in message and _target(handle) in message
    assert "sk-abcdefghijklmnopqrstuvwxyz" not in message
    assert [r["args"] for r in _lines(out)] == [["three"]]


def test_a_write_failure_never_breaks_the_call(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "adir").mkdir()
    fluxloop.configure(record_args=True, recording_file=str(tmp_path / "adir"))
    with caplog.at_level(logging.WARNING, logger="fluxloop"):
        assert handle("hi") == "ok:hi"
        assert asyncio.run(_async_handle("hey")) == "hey"
    assert len([r for r in caplog.records if r.name == "fluxloop"]) == 1


@fluxloop.agent()
async def _async_handle(text: str) -> str:
    return text


def test_a_bad_setting_never_breaks_the_call(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("FLUXLOOP_RECORD_ARGS", "perhaps")
    settings._config = None
    RECORDING.on = None
    with caplog.at_level(logging.WARNING, logger="fluxloop"):
        assert handle("hi") == "ok:hi"
        assert handle("again") == "ok:again"
    assert RECORDING.on is False
    (warning,) = [r for r in caplog.records if r.name == "fluxloop"]
    assert "FLUXLOOP_RECORD_ARGS" in warning.getMessage()


# --------------------------------------------------------------------------- the file


def test_append_opens_with_o_append_and_writes_each_line_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls: list[tuple[int, bool]] = []
    real_write = os.write

    def spy(fd: int, data: Any) -> int:
        calls.append((len(data), bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_APPEND)))
        return real_write(fd, data)

    monkeypatch.setattr(jsonl.os, "write", spy)
    big = "x" * (3 * 1024 * 1024)  # a few MB: still one write
    out = tmp_path / "big.jsonl"
    for cap in (0, 64 * 1024 * 1024):
        jsonl.append_lines(out, [json.dumps({"big": big})], max_bytes=cap, backups=1)
    monkeypatch.undo()
    assert calls == [(len(big) + 12, True)] * 2
    assert [len(r["big"]) for r in _lines(out)] == [len(big)] * 2


def test_rotation_keeps_whole_lines_and_at_most_n_backups(tmp_path: Path) -> None:
    cap = 1_000
    _on(tmp_path, recording_max_bytes=cap, recording_backups=2)
    for i in range(40):
        handle(f"call {i}", "p" * 150)
    files = sorted(tmp_path.glob("args.jsonl*"))
    names = {f.name for f in files}
    assert {"args.jsonl", "args.jsonl.1", "args.jsonl.2"} <= names
    assert "args.jsonl.3" not in names
    kept: list[int] = []
    for name in ("args.jsonl.2", "args.jsonl.1", "args.jsonl"):
        path = tmp_path / name
        assert path.stat().st_size <= cap
        assert path.read_bytes().endswith(b"\n")
        kept += [r["iteration"] for r in _lines(path)]
    # Oldest to newest across the files, ending with the last call, nothing missing between.
    assert kept == list(range(kept[0], 40))
    assert len(kept) >= 6


def test_a_line_larger_than_the_cap_goes_whole_into_a_fresh_file(tmp_path: Path) -> None:
    out = _on(tmp_path, recording_max_bytes=500, recording_backups=3)
    handle("small")
    handle("big", "b" * 2_000)
    handle("after")
    assert [r["args"][0] for r in _lines(tmp_path / "args.jsonl.2")] == ["small"]
    assert [r["args"][0] for r in _lines(tmp_path / "args.jsonl.1")] == ["big"]
    assert [r["args"][0] for r in _lines(out)] == ["after"]


def test_without_a_cap_there_is_no_rotation_and_no_lock_file(tmp_path: Path) -> None:
    out = _on(tmp_path, recording_max_bytes=0)
    for i in range(20):
        handle(f"call {i}", "p" * 200)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["args.jsonl"]
    assert len(_lines(out)) == 20


def test_zero_backups_starts_over(tmp_path: Path) -> None:
    out = _on(tmp_path, recording_max_bytes=300, recording_backups=0)
    for i in range(6):
        handle(f"call {i}", "p" * 100)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["args.jsonl", "args.jsonl.lock"]
    assert _lines(out)[-1]["args"][0] == "call 5"


CHILD = textwrap.dedent(
    """
    import os, sys, threading, time
    from pathlib import Path
    import fluxloop

    out, ready, go = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    proc, threads, per, size = (int(a) for a in sys.argv[4:8])
    cap, backups = int(sys.argv[8]), int(sys.argv[9])
    fluxloop.configure(
        record_args=True, recording_file=str(out),
        recording_max_bytes=cap, recording_backups=backups,
    )

    @fluxloop.agent()
    def handle(proc, thread, i, payload):
        return i

    barrier = threading.Barrier(threads)

    def work(t):
        barrier.wait()
        for i in range(per):
            handle(proc, t, i, payload=str(proc) * size)

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    ready.touch()
    deadline = time.monotonic() + 60
    while not go.exists():  # every process starts writing at once
        if time.monotonic() > deadline:
            sys.exit("never told to go")
        time.sleep(0.005)
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    """
)


def _run_writers(
    tmp_path: Path, *, procs: int, threads: int, per: int, size: int, cap: int, backups: int
) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD, encoding="utf-8")
    out, go = tmp_path / "out" / "args.jsonl", tmp_path / "go"
    children = [
        subprocess.Popen(
            [
                sys.executable,
                str(script),
                str(out),
                str(tmp_path / f"ready{n}"),
                str(go),
                *(str(v) for v in (n, threads, per, size, cap, backups)),
            ],
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(procs)
    ]
    try:
        deadline = time.monotonic() + 60
        while not all((tmp_path / f"ready{n}").exists() for n in range(procs)):
            assert time.monotonic() < deadline, "writers did not start"
            assert all(c.poll() is None for c in children), [c.stderr for c in children]
            time.sleep(0.01)
        go.touch()
        for child in children:
            _, err = child.communicate(timeout=120)
            assert child.returncode == 0, err
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()


def _check_lines(paths: list[Path], procs: int, threads: int, per: int, size: int) -> None:
    seen: set[tuple[int, int, int]] = set()
    for path in paths:
        for raw in path.read_bytes().split(b"\n")[:-1]:
            line = json.loads(raw)  # every line whole and parseable
            proc, thread, i = line["args"]
            assert line["kwargs"]["payload"] == str(proc) * size
            seen.add((proc, thread, i))
    assert len(seen) == procs * threads * per


def test_processes_and_threads_append_whole_lines(tmp_path: Path) -> None:
    procs, threads, per, size = 4, 4, 25, 20_000  # lines far above PIPE_BUF and a page
    _run_writers(tmp_path, procs=procs, threads=threads, per=per, size=size, cap=0, backups=0)
    out = tmp_path / "out" / "args.jsonl"
    assert len(out.read_bytes().split(b"\n")) - 1 == procs * threads * per
    _check_lines([out], procs, threads, per, size)


def test_processes_rotating_one_file_lose_no_line(tmp_path: Path) -> None:
    procs, threads, per, size, cap = 4, 3, 20, 3_000, 60_000
    _run_writers(tmp_path, procs=procs, threads=threads, per=per, size=size, cap=cap, backups=200)
    files = sorted((tmp_path / "out").glob("args.jsonl*"))
    files = [f for f in files if not f.name.endswith(".lock")]
    assert len(files) > 5
    for path in files:
        assert path.stat().st_size <= cap
    _check_lines(files, procs, threads, per, size)
