"""ExperimentWriter and the JSON coercion it relies on (faults 9, 23, 29, 32, 34)."""

from __future__ import annotations

import ast
import errno
import gc
import json
import math
import threading
import tracemalloc
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any

import pytest
import yaml

import pytest_fluxloop.artifacts as artifacts_pkg
from pytest_fluxloop.artifacts import (
    ArtifactWriteError,
    ExperimentWriter,
    OutputPathError,
    dumps_line,
    to_jsonable,
)
from pytest_fluxloop.artifacts import writer as writer_mod
from pytest_fluxloop.records import ErrorInfo, Observation, TraceRecord

T0 = datetime(2024, 11, 1, 14, 30, 22, tzinfo=timezone.utc)


def make_record(i: int = 0, **overrides: Any) -> TraceRecord:
    data: dict[str, Any] = {
        "trace_id": f"trace-{i}",
        "case_id": f"case-{i}",
        "iteration": i,
        "persona": "novice_user",
        "input": f"question {i}",
        "output": f"answer {i}",
        "duration_ms": 100.0 + i,
        "success": True,
        "status": "success",
        "started_at": T0,
        "completed_at": T0,
        "observations": [
            Observation(trace_id=f"trace-{i}", type="span_start", name="agent_run", timestamp=T0),
            Observation(trace_id=f"trace-{i}", type="span_end", name="agent_run", timestamp=T0),
        ],
    }
    data.update(overrides)
    return TraceRecord(**data)


def make_writer(root: Path, **overrides: Any) -> ExperimentWriter:
    kwargs: dict[str, Any] = {
        "experiment_name": "my_agent_experiment",
        "description": "unit test",
        "config_snapshot": {"name": "my_agent_experiment", "iterations": 2},
        "metadata": {"team": "qa"},
        "seed": 42,
        "total_cases": 3,
        "now": T0,
    }
    kwargs.update(overrides)
    return ExperimentWriter.create(root, **kwargs)


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# -- to_jsonable / dumps_line -------------------------------------------------------------


class Color(Enum):
    RED = "red"


@dataclass
class Point:
    x: int
    y: float


def test_to_jsonable_coercions() -> None:
    cyclic: dict[str, Any] = {"name": "root"}
    cyclic["self"] = cyclic
    shared = [1, 2]
    data = {
        "bytes_text": "héllo".encode(),
        "bytes_binary": b"\xff\x00\x10",
        "nan": float("nan"),
        "inf": float("inf"),
        "ninf": -math.inf,
        "set": {3, 1, 2},
        "tuple": (1, "a"),
        "when": T0,
        "day": date(2024, 1, 2),
        "enum": Color.RED,
        "decimal": Decimal("1.5"),
        "point": Point(1, float("nan")),
        "cycle": cyclic,
        "shared": [shared, shared],
        1: "int key",
        None: "none key",
        "model": ErrorInfo(type="E", message="m"),
    }
    assert to_jsonable(data) == {
        "bytes_text": "héllo",
        "bytes_binary": {"__bytes__": "/wAQ"},
        "nan": None,
        "inf": None,
        "ninf": None,
        "set": [1, 2, 3],
        "tuple": [1, "a"],
        "when": "2024-11-01T14:30:22Z",
        "day": "2024-01-02",
        "enum": "red",
        "decimal": 1.5,
        "point": {"x": 1, "y": None},
        "cycle": {"name": "root", "self": "<cycle>"},
        "shared": [[1, 2], [1, 2]],  # shared, not cyclic: kept
        "1": "int key",
        "null": "none key",
        "model": {"kind": "agent", "type": "E", "message": "m", "traceback": None},
    }


def test_to_jsonable_unknown_objects_and_depth() -> None:
    class Opaque:
        def __repr__(self) -> str:
            return "O" * 5000

    class Broken:
        def __repr__(self) -> str:
            raise RuntimeError("nope")

    deep: Any = "leaf"
    for _ in range(200):
        deep = {"d": deep}
    out = to_jsonable({"opaque": Opaque(), "broken": Broken(), "deep": deep})
    assert len(out["opaque"]) == 2000
    assert out["opaque"].startswith("OOO")
    assert "unrepresentable" in out["broken"]
    node = out["deep"]
    depth = 0
    while isinstance(node, dict):
        node, depth = node["d"], depth + 1
    assert node == "<max depth>"
    assert depth < 70
    json.dumps(out, allow_nan=False)


def test_model_with_unserialisable_output_falls_back_per_field() -> None:
    loop: list[Any] = []
    loop.append(loop)
    record = make_record(output={"loop": loop, "obj": object(), "raw": b"\xfe"})
    out = to_jsonable(record)
    assert out["output"]["loop"] == ["<cycle>"]
    assert out["output"]["obj"].startswith("<object object at")
    assert out["output"]["raw"] == {"__bytes__": "/g=="}
    assert out["started_at"] == "2024-11-01T14:30:22Z"
    assert out["observations"][0]["name"] == "agent_run"


def test_lone_surrogates_become_replacement_characters() -> None:
    assert to_jsonable({"k\udcff": ["bad decode \udcff", "pair 😀"]}) == {
        "k\ufffd": ["bad decode \ufffd", "pair 😀"]
    }
    record = make_record(output=to_jsonable("x \ud800 y"))
    assert json.loads(record.model_dump_json())["output"] == "x \ufffd y"


@pytest.mark.parametrize(
    "text",
    [
        "line one\nline two\r\nthree\rfour",
        "sep\u2028para\u2029nel\x85end",
        "emoji 😀🎉 rtl שלום zwj 👩‍💻 nul \x00 tab\t",
        "lone surrogate \ud800 stays escaped",
    ],
)
def test_dumps_line_is_one_line_and_round_trips(text: str) -> None:
    line = dumps_line({"input": text, "nested": [text, {"k\n": text}]})
    assert len(line.splitlines()) == 1
    assert "\n" not in line and "\r" not in line
    line.encode("utf-8")  # always writable as UTF-8
    assert json.loads(line) == {"input": text, "nested": [text, {"k\n": text}]}


def test_dumps_line_keeps_unicode_readable_and_coerces() -> None:
    assert dumps_line({"e": "😀 café"}) == '{"e":"😀 café"}'
    assert dumps_line({"n": float("nan"), "b": b"x"}) == '{"n":null,"b":"x"}'


@pytest.mark.parametrize(
    "data",
    [
        {"e": "😀 café", "n": 1, "f": 0.653, "t": True, "z": None, "l": [1, "a", {"k": []}]},
        {"text": 'line\nbreak\r\t\x01\x7f \u2028 \u2029 \x85 "quoted" back\\slash'},
        {"big": 2**70, "neg": -(2**65), "tiny": 5e-324, "large": 1.5e300},
        {"deep": json.loads("[" * 40 + '"x"' + "]" * 40)},
        ["top", "level", "list"],
    ],
)
def test_json_line_is_dumps_line_for_json_data(data: Any) -> None:
    # The writer's fast encoder writes the line the json module would (float exponents
    # aside: "1e-07" and "1e-7" are the same number), so files don't depend on which ran.
    fast = writer_mod.json_line(data)
    assert json.loads(fast) == json.loads(dumps_line(data)) == data
    assert fast.splitlines() == [fast]
    if "large" not in json.dumps(data) and "tiny" not in json.dumps(data):
        assert fast == dumps_line(data)


@pytest.mark.parametrize(
    "data",
    [
        {"n": float("nan")},
        {"i": [float("inf"), float("-inf")]},
        {"s": "lone \udc80 surrogate"},
        {"said": "NaN and Infinity are words here"},
    ],
)
def test_json_line_leaves_what_pydantic_cannot_write_to_dumps_line(data: Any) -> None:
    # Non-finite floats are coerced and lone surrogates escaped exactly as dumps_line does.
    assert writer_mod.json_line(data) == dumps_line(data)


# -- create -------------------------------------------------------------------------------


def test_create_writes_initial_files(tmp_path: Path) -> None:
    writer = make_writer(tmp_path, suffix="Baseline Test")
    assert writer.path == tmp_path / "exp_20241101_143022_Baseline-Test"
    assert len(writer.run_id) == 32
    names = sorted(p.name for p in writer.path.iterdir())
    assert names == [
        ".fluxloop-reserve",  # disk space for the final summary, released by finish()
        "config.yaml",
        "metadata.json",
        "observations.jsonl",
        "summary.json",
        "trace_summary.jsonl",
        "traces.jsonl",
    ]
    config = yaml.safe_load((writer.path / "config.yaml").read_text(encoding="utf-8"))
    assert config == {"name": "my_agent_experiment", "iterations": 2}
    meta = json.loads((writer.path / "metadata.json").read_text(encoding="utf-8"))
    assert meta["team"] == "qa"
    assert meta["run_id"] == writer.run_id
    assert meta["experiment_name"] == "my_agent_experiment"
    assert meta["started_at"] == "2024-11-01T14:30:22Z"
    assert {"fluxloop_version", "python_version", "platform", "description"} <= set(meta)
    summary = json.loads((writer.path / "summary.json").read_text(encoding="utf-8"))
    assert summary["status"] == "running"
    assert summary["total_traces"] == 0
    assert summary["run_id"] == writer.run_id
    writer.finish("complete")
    assert not (writer.path / ".fluxloop-reserve").exists()


def test_config_yaml_keeps_order_and_unicode(tmp_path: Path) -> None:
    writer = make_writer(tmp_path, config_snapshot={"zeta": 1, "alpha": "café 😀", "mid": [1]})
    text = (writer.path / "config.yaml").read_text(encoding="utf-8")
    assert text.index("zeta") < text.index("alpha") < text.index("mid")
    assert "café 😀" in text
    writer.finish("complete")


def test_bad_experiment_name_is_rejected_before_any_file(tmp_path: Path) -> None:
    root = tmp_path / "experiments"
    with pytest.raises(OutputPathError, match=r"\.\./x"):
        make_writer(root, experiment_name="../x")
    assert not root.exists()


def test_unwritable_output_root(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputPathError, match="not writable"):
        make_writer(blocker / "experiments")


def test_two_writers_in_the_same_second_never_share_a_dir(tmp_path: Path) -> None:
    a = make_writer(tmp_path)
    b = make_writer(tmp_path)
    assert a.path != b.path
    assert a.run_id != b.run_id
    a.append(make_record(1))
    b.append(make_record(2))
    a.finish("complete")
    b.finish("complete")
    assert [r["trace_id"] for r in read_lines(a.path / "traces.jsonl")] == ["trace-1"]
    assert [r["trace_id"] for r in read_lines(b.path / "traces.jsonl")] == ["trace-2"]


# -- append -------------------------------------------------------------------------------


def test_append_is_on_disk_immediately(tmp_path: Path) -> None:
    writer = make_writer(tmp_path)
    writer.append(make_record(0))
    # Read through a separate handle before finish: the line must already be flushed.
    summaries = read_lines(writer.path / "trace_summary.jsonl")
    assert summaries == [
        {
            "trace_id": "trace-0",
            "case_id": "case-0",
            "iteration": 0,
            "persona": "novice_user",
            "input": "question 0",
            "output": "answer 0",
            "duration_ms": 100.0,
            "success": True,
            "status": "success",
            "attempts": 1,
            "token_usage": None,
            "error": None,
            "error_kind": None,
            "error_type": None,
            # The earlier FluxLoop transcript shape (tests/unit/test_artifacts_legacy_fields.py).
            "conversation": [
                {
                    "turn_index": 1,
                    "role": "user",
                    "content": "question 0",
                    "source": "input",
                    "metadata": {"persona": "novice_user"},
                },
                {
                    "turn_index": 1,
                    "role": "assistant",
                    "content": "answer 0",
                    "source": "agent",
                    "metadata": {},
                },
            ],
            "termination_reason": None,
            "evaluation": None,
        }
    ]
    traces = read_lines(writer.path / "traces.jsonl")
    assert len(traces) == 1
    assert len(traces[0]["observations"]) == 2
    observations = read_lines(writer.path / "observations.jsonl")
    assert [o["type"] for o in observations] == ["span_start", "span_end"]
    writer.finish("complete")


def test_save_traces_false_writes_only_trace_summary(tmp_path: Path) -> None:
    writer = make_writer(tmp_path, save_traces=False)
    writer.append(make_record(0))
    writer.finish("complete")
    assert not (writer.path / "traces.jsonl").exists()
    assert not (writer.path / "observations.jsonl").exists()
    assert len(read_lines(writer.path / "trace_summary.jsonl")) == 1


def test_save_aggregated_metrics_false(tmp_path: Path) -> None:
    writer = make_writer(tmp_path, save_aggregated_metrics=False)
    writer.append(make_record(0))
    summary = writer.finish("complete", exit_code=0)
    assert summary.total_traces == 1
    assert not (writer.path / "summary.json").exists()
    assert not (writer.path / "metadata.json").exists()
    assert (writer.path / "config.yaml").exists()


def test_weird_outputs_keep_jsonl_valid(tmp_path: Path) -> None:
    loop: dict[str, Any] = {}
    loop["again"] = loop
    writer = make_writer(tmp_path)
    writer.append(make_record(0, output=b"\x89PNG\r\n"))
    writer.append(make_record(1, output=float("nan")))
    writer.append(make_record(2, output={"loop": loop, "when": datetime(2024, 1, 1)}))
    writer.finish("complete")
    outputs = [r["output"] for r in read_lines(writer.path / "trace_summary.jsonl")]
    assert outputs == [
        {"__bytes__": "iVBORw0K"},
        None,
        {"loop": {"again": "<cycle>"}, "when": "2024-01-01T00:00:00"},
    ]
    assert [r["output"] for r in read_lines(writer.path / "traces.jsonl")] == outputs


def test_appends_from_many_threads_never_interleave(tmp_path: Path) -> None:
    writer = make_writer(tmp_path, total_cases=400)
    big = "x" * 20_000  # large lines make torn/interleaved writes visible

    def worker(start: int) -> None:
        for i in range(start, start + 50):
            writer.append(make_record(i, output=big))

    threads = [threading.Thread(target=worker, args=(n * 50,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    summary = writer.finish("complete")
    for name in ("trace_summary.jsonl", "traces.jsonl"):
        records = read_lines(writer.path / name)
        assert sorted(r["iteration"] for r in records) == list(range(400))
    assert len(read_lines(writer.path / "observations.jsonl")) == 800
    assert summary.total_traces == 400


@pytest.mark.slow
def test_memory_stays_flat(tmp_path: Path) -> None:
    writer = make_writer(tmp_path, total_cases=3000, save_traces=True)
    payload = "p" * 2_000
    for i in range(100):
        writer.append(make_record(i, output=payload))
    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for i in range(100, 2100):
            writer.append(make_record(i, output=payload))
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    writer.finish("complete")
    # Keeping the 2,000 records (>2 KB each) would cost >4 MB; aggregates cost ~nothing.
    assert after - before < 256 * 1024


def test_append_after_finish_is_an_error(tmp_path: Path) -> None:
    writer = make_writer(tmp_path)
    writer.finish("complete")
    with pytest.raises(RuntimeError, match="already finished"):
        writer.append(make_record(0))


# -- finish -------------------------------------------------------------------------------


def test_finish_aggregates_and_writes_summary(tmp_path: Path) -> None:
    writer = make_writer(tmp_path, total_cases=5)
    writer.append(make_record(0, duration_ms=100.0))
    writer.append(make_record(1, duration_ms=300.0))
    writer.append(
        make_record(
            2,
            success=False,
            status="error",
            duration_ms=200.0,
            error=ErrorInfo(type="ValueError", message="bad", traceback="Traceback ...\n"),
        )
    )
    writer.append(
        make_record(
            3,
            success=False,
            status="timeout",
            duration_ms=400.0,
            error=ErrorInfo(kind="timeout", type="TimeoutError", message="too slow"),
        )
    )
    summary = writer.finish("interrupted", exit_code=2, extra={"resumed_from": "exp_x"})
    assert summary.status == "interrupted"
    assert summary.exit_code == 2
    assert (summary.total_traces, summary.successful, summary.failed) == (4, 2, 2)
    assert summary.by_status == {"success": 2, "error": 1, "timeout": 1}
    assert summary.by_error_kind == {"agent": 1, "timeout": 1}
    assert summary.avg_duration_ms == 250.0
    assert summary.total_cases == 5
    assert summary.seed == 42
    assert summary.completed_at is not None
    on_disk = json.loads((writer.path / "summary.json").read_text(encoding="utf-8"))
    assert on_disk["status"] == "interrupted"
    assert on_disk["resumed_from"] == "exp_x"
    assert on_disk["run_id"] == writer.run_id
    assert on_disk["config_snapshot"] == {"name": "my_agent_experiment", "iterations": 2}
    for key in ("experiment_name", "total_traces", "successful", "failed", "avg_duration_ms"):
        assert on_disk[key] == getattr(summary, key)
    error_line = read_lines(writer.path / "trace_summary.jsonl")[2]
    assert (error_line["error"], error_line["error_kind"]) == ("bad", "agent")


def test_summary_previews_without_writing(tmp_path: Path) -> None:
    writer = make_writer(tmp_path)
    before = (writer.path / "summary.json").read_bytes()
    writer.append(make_record(0))
    preview = writer.summary()
    assert preview.status == "running"
    assert preview.total_traces == 1
    assert preview.completed_at is None
    assert (writer.path / "summary.json").read_bytes() == before
    writer.finish("complete")


def test_finish_is_idempotent(tmp_path: Path) -> None:
    writer = make_writer(tmp_path)
    first = writer.finish("complete", exit_code=0)
    content = (writer.path / "summary.json").read_bytes()
    second = writer.finish("failed", exit_code=1)
    assert second is first
    assert (writer.path / "summary.json").read_bytes() == content
    assert writer.finished


def test_extra_cannot_shadow_summary_fields(tmp_path: Path) -> None:
    writer = make_writer(tmp_path)
    with pytest.raises(ValueError, match="total_traces"):
        writer.finish("complete", extra={"total_traces": 99})
    assert writer.finish("complete").total_traces == 0


def test_summary_replace_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    writer = make_writer(tmp_path)
    writer.append(make_record(0))
    running = (writer.path / "summary.json").read_bytes()

    def fail_replace(src: str, dst: str) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(writer_mod.os, "replace", fail_replace)
    with pytest.raises(ArtifactWriteError, match="No space left on device") as info:
        writer.finish("complete")
    assert info.value.path == writer.path / "summary.json"
    # The previous summary is intact and no temp file is left behind.
    assert (writer.path / "summary.json").read_bytes() == running
    assert not [p for p in writer.path.iterdir() if p.name.endswith(".tmp")]
    assert len(read_lines(writer.path / "traces.jsonl")) == 1
    monkeypatch.undo()
    assert writer.finish("complete").status == "complete"
    assert json.loads((writer.path / "summary.json").read_text())["status"] == "complete"


def test_context_manager_marks_status(tmp_path: Path) -> None:
    with make_writer(tmp_path) as ok:
        ok.append(make_record(0))
    assert json.loads((ok.path / "summary.json").read_text())["status"] == "complete"
    with pytest.raises(KeyboardInterrupt), make_writer(tmp_path) as stopped:
        raise KeyboardInterrupt
    on_disk = json.loads((stopped.path / "summary.json").read_text())
    assert (on_disk["status"], on_disk["exit_code"]) == ("interrupted", 2)


# -- disk errors (fault 23) ---------------------------------------------------------------


class _FlakyFile:
    """Wraps a raw file; fails writes while ``fail`` is set, optionally after a partial write."""

    def __init__(self, inner: Any, *, partial: bool) -> None:
        self.inner = inner
        self.partial = partial
        self.fail = True

    def write(self, data: memoryview) -> int:
        if self.fail:
            if self.partial:
                self.inner.write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        return int(self.inner.write(data))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.mark.parametrize("partial", [False, True])
def test_disk_full_keeps_written_lines(tmp_path: Path, partial: bool) -> None:
    writer = make_writer(tmp_path)
    for i in range(3):
        writer.append(make_record(i))
    line_file = writer._trace_summary
    assert line_file is not None
    flaky = _FlakyFile(line_file._fh, partial=partial)
    line_file._fh = flaky  # type: ignore[assignment]
    target = writer.path / "trace_summary.jsonl"
    with pytest.raises(ArtifactWriteError) as info:
        writer.append(make_record(3))
    assert info.value.path == target
    assert str(target) in str(info.value)
    assert "No space left on device" in str(info.value)

    lines = target.read_text(encoding="utf-8").split("\n")
    assert [json.loads(line)["trace_id"] for line in lines[:3]] == ["trace-0", "trace-1", "trace-2"]

    # The half-written line was cut back: every file ends with a whole line, and the failed
    # record is in none of them (its detail lines were written first, then removed too).
    for name in ("trace_summary.jsonl", "traces.jsonl", "observations.jsonl"):
        assert (writer.path / name).read_bytes().endswith(b"}\n"), name
    assert len(read_lines(writer.path / "traces.jsonl")) == 3
    assert {o["trace_id"] for o in read_lines(writer.path / "observations.jsonl")} == {
        "trace-0", "trace-1", "trace-2"
    }  # fmt: skip

    flaky.fail = False  # space freed: the writer carries on
    writer.append(make_record(4))
    summary = writer.finish("complete")
    expected = ["trace-0", "trace-1", "trace-2", "trace-4"]
    for name in ("trace_summary.jsonl", "traces.jsonl"):
        assert [line["trace_id"] for line in read_lines(writer.path / name)] == expected, name
    assert summary.total_traces == 4  # the failed record was not counted


def test_failed_detail_write_leaves_no_summary_line(tmp_path: Path) -> None:
    writer = make_writer(tmp_path)
    writer.append(make_record(0))
    assert writer._traces is not None
    writer._traces._fh = _FlakyFile(writer._traces._fh, partial=False)  # type: ignore[assignment]
    with pytest.raises(ArtifactWriteError) as info:
        writer.append(make_record(1))
    assert info.value.path == writer.path / "traces.jsonl"
    # trace_summary.jsonl is written last: a listed trace is always complete elsewhere.
    assert [r["trace_id"] for r in read_lines(writer.path / "trace_summary.jsonl")] == ["trace-0"]
    assert writer.summary().total_traces == 1
    writer.finish("failed")


def test_append_rejects_non_records(tmp_path: Path) -> None:
    writer = make_writer(tmp_path)
    with pytest.raises(TypeError, match="TraceRecord"):
        writer.append({"trace_id": "x"})  # type: ignore[arg-type]
    writer.finish("complete")


# -- layering -----------------------------------------------------------------------------


def test_artifacts_package_does_not_import_pytest() -> None:
    package_dir = Path(artifacts_pkg.__file__).parent
    for source in package_dir.glob("*.py"):
        tree = ast.parse(source.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            assert not any(n.split(".")[0] in {"pytest", "_pytest"} for n in names), source
