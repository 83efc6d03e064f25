"""The judge cache file: where it is, what a line holds, and that it never fails a run."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

import pytest

from pytest_fluxloop.errors import ConfigError
from pytest_fluxloop.evaluation.judge_cache import JudgeCache, cache_key, resolve_cache_path
from pytest_fluxloop.records import EvaluatorResult
from pytest_fluxloop.redact import Redactor

KEY = "sk-test-cachekey-0123456789abcdef"


def result(status: str = "passed", **fields: Any) -> EvaluatorResult:
    scored = status in ("passed", "failed")
    base: dict[str, Any] = {
        "name": "helpful",
        "type": "llm_judge",
        "status": status,
        "score": 0.8 if scored else None,
        "raw_score": 8.0 if scored else None,
        "max_score": 10.0,
        "reason": "clear and correct",
        "evidence": [{"turn": 1, "quote": "Done"}],
        "model": "m",
        "llm_calls": 1,
    }
    return EvaluatorResult(**{**base, **fields})


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# --------------------------------------------------------------------------- keys and paths


def test_cache_key_is_stable_and_depends_on_each_part() -> None:
    rubric = {"template": "t", "max_score": 10}
    key = cache_key("m", rubric, "conversation")
    assert key == cache_key("m", {"max_score": 10, "template": "t"}, "conversation")
    assert len(key) == 64
    assert key != cache_key("m2", rubric, "conversation")
    assert key != cache_key("m", {**rubric, "max_score": 5}, "conversation")
    assert key != cache_key("m", rubric, "conversation!")


def test_cache_path_defaults_and_relative_paths(tmp_path: Path) -> None:
    root = tmp_path.resolve()
    default = root / ".fluxloop" / "judge_cache.jsonl"
    assert resolve_cache_path(tmp_path, None) == default
    assert resolve_cache_path(tmp_path, True) == default
    assert resolve_cache_path(tmp_path, False) is None
    assert resolve_cache_path(tmp_path, "cache/j.jsonl") == root / "cache" / "j.jsonl"
    assert resolve_cache_path(tmp_path, str(root / "in.jsonl")) == root / "in.jsonl"


@pytest.mark.parametrize("value", ["../outside.jsonl", "/tmp/elsewhere/judge.jsonl", "a/../../x"])
def test_cache_path_outside_the_project_is_refused(tmp_path: Path, value: str) -> None:
    project = tmp_path / "project"
    project.mkdir()
    with pytest.raises(ConfigError, match=r"limits\.cache .*outside the project root"):
        resolve_cache_path(project, value)


def test_cache_path_symlinked_out_is_refused(tmp_path: Path) -> None:
    project, outside = tmp_path / "project", tmp_path / "outside"
    project.mkdir()
    outside.mkdir()
    (project / "link").symlink_to(outside)
    with pytest.raises(ConfigError, match=r"limits\.cache"):
        resolve_cache_path(project, "link/judge.jsonl")
    with pytest.raises(ConfigError, match=r"limits\.cache"):
        resolve_cache_path(project, "  ")
    with pytest.raises(ConfigError, match="folder"):
        resolve_cache_path(project, ".")


# --------------------------------------------------------------------------- lines


def test_a_scored_verdict_is_stored_and_read_back_by_another_process(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "judge_cache.jsonl"
    cache = JudgeCache(path)
    assert cache.get("k1") is None
    assert cache.put("k1", evaluator="helpful", model="m", result=result())
    assert cache.get("k1") == {
        "status": "passed",
        "score": 0.8,
        "raw_score": 8.0,
        "max_score": 10.0,
        "reason": "clear and correct",
        "evidence": [{"turn": 1, "quote": "Done"}],
    }
    (line,) = lines(path)
    assert set(line) == {"key", "evaluator", "model", "created_at", "result"}
    assert (line["key"], line["evaluator"], line["model"]) == ("k1", "helpful", "m")
    assert line["created_at"].endswith("Z")
    fresh = JudgeCache(path)  # the next run (or another worker) reads the file
    assert fresh.get("k1") == cache.get("k1") and len(fresh) == 1


def test_unscored_results_are_never_stored(tmp_path: Path) -> None:
    path = tmp_path / "judge_cache.jsonl"
    cache = JudgeCache(path)
    unscored = result("unscored", unscored_reason="invalid_output")
    assert not cache.put("k", evaluator="helpful", model="m", result=unscored)
    assert not cache.put("k", evaluator="helpful", model="m", result=result("skipped"))
    assert cache.get("k") is None and not path.exists()


def test_reasons_and_evidence_are_redacted_and_no_key_is_written(tmp_path: Path) -> None:
    path = tmp_path / "judge_cache.jsonl"
    cache = JudgeCache(path, redactor=Redactor(extra_secrets=[KEY]))
    leaky = result(reason=f"the agent printed {KEY}", evidence=[{"turn": 2, "quote": KEY}])
    cache.put("k", evaluator="helpful", model="m", result=leaky)
    text = path.read_text()
    assert KEY not in text
    assert "REDACTED" in text
    assert KEY not in json.dumps(cache.get("k"))


def test_corrupt_and_truncated_lines_are_skipped_and_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "judge_cache.jsonl"
    JudgeCache(path).put("good", evaluator="e", model="m", result=result())
    with path.open("a") as handle:
        handle.write("not json\n")
        handle.write('{"key": "unscored", "result": {"status": "unscored", "score": null}}\n')
        handle.write('["a list"]\n')
        handle.write('{"key": "cut", "result": {"status": "pass')  # a writer died mid-line
    caplog.set_level(logging.WARNING, "pytest_fluxloop.evaluation")
    cache = JudgeCache(path)
    assert cache.get("good") is not None
    assert cache.get("cut") is None and cache.get("unscored") is None
    assert cache.get("other") is None
    assert cache.skipped_lines == 4
    warnings = [r for r in caplog.records if "corrupt" in r.getMessage()]
    assert len(warnings) == 1 and "4 corrupt" in warnings[0].getMessage()
    # An entry appended after the cut line starts on a line of its own.
    assert cache.put("new", evaluator="e", model="m", result=result("failed", score=0.1))
    assert JudgeCache(path).get("new") == cache.get("new")


def test_an_unwritable_cache_logs_once_and_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    cache = JudgeCache(blocker / "judge_cache.jsonl")  # its folder is a file
    caplog.set_level(logging.WARNING, "pytest_fluxloop.evaluation")
    assert not cache.put("a", evaluator="e", model="m", result=result())
    assert not cache.put("b", evaluator="e", model="m", result=result())
    assert cache.get("a") is not None  # still served within this run
    assert len([r for r in caplog.records if "not writable" in r.getMessage()]) == 1


def test_parallel_writers_never_interleave_lines(tmp_path: Path) -> None:
    path = tmp_path / "judge_cache.jsonl"
    caches = [JudgeCache(path) for _ in range(4)]  # as if several workers shared the file
    long_reason = "x" * 5000

    def write(index: int) -> None:
        for n in range(25):
            caches[index].put(
                f"{index}-{n}", evaluator="e", model="m", result=result(reason=long_reason)
            )

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(lines(path)) == 100
    assert len(JudgeCache(path)) == 100
