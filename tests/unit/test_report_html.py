"""The HTML report (``pytest_fluxloop.report.html``) on synthetic experiment folders.

Folders are written by the real :class:`ExperimentWriter` from ``TraceRecord`` s built here:
escaping of untrusted trace content, the size budget at 3,000 cases, truncation notes that
name the right JSONL line, failures first, the baseline section, folders without
traces.jsonl or an evaluation block, the overwrite rules and the CLI command. The page in a
real browser is tested in ``tests/browser/test_report_page.py``.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pytest_fluxloop.artifacts.reader import ExperimentFolder
from pytest_fluxloop.artifacts.writer import ExperimentWriter
from pytest_fluxloop.cli import cli
from pytest_fluxloop.errors import ConfigError
from pytest_fluxloop.evaluation.run_stats import RunEvaluation
from pytest_fluxloop.evaluation.spec import EvaluationSpec
from pytest_fluxloop.records import (
    CaseEvaluation,
    ErrorInfo,
    EvaluatorResult,
    MultiTurnInfo,
    Observation,
    TraceRecord,
)
from pytest_fluxloop.report.html import REPORT_FILE, render_report, write_report

T0 = datetime(2026, 1, 2, 9, 30, tzinfo=timezone.utc)
PERSONAS = ("novice", "expert", "hurried")
EVIL = '<script>alert(1)</script><img src=x onerror="alert(2)">'


def make_record(
    i: int,
    *,
    output: str | None = None,
    persona: str | None = None,
    verdict: str = "passed",
    status: str = "success",
    input_text: str | None = None,
    observations: int = 4,
) -> TraceRecord:
    """Case ``i``: a two-turn conversation with an agent span, a tool and a generation."""
    persona = persona or PERSONAS[i % len(PERSONAS)]
    input_text = input_text or f"Question number {i % 7}?"
    output = output if output is not None else f"Answer {i}."
    start = T0 + timedelta(seconds=i)
    trace_id = f"t{i:06d}"
    obs = []
    for n in range(observations // 4):
        at = start + timedelta(milliseconds=10 * n)
        oid = f"s{i}-{n}"
        obs += [
            Observation(
                trace_id=trace_id,
                type="span_start",
                name="agent",
                timestamp=at,
                observation_id=oid,
                input={"q": input_text},
                kind="agent",
                role="agent",
            ),
            Observation(
                trace_id=trace_id,
                type="span_start",
                name="chat",
                timestamp=at,
                observation_id=oid + "g",
                parent_id=oid,
                kind="generation",
                role="agent",
                input=[{"role": "user", "content": input_text}],
            ),
            Observation(
                trace_id=trace_id,
                type="span_end",
                name="chat",
                observation_id=oid + "g",
                timestamp=at + timedelta(milliseconds=6),
                parent_id=oid,
                output=output,
                duration_ms=6.0,
                kind="generation",
                role="agent",
                metadata={"model": "gpt-test", "usage": {"total_tokens": 30}},
            ),
            Observation(
                trace_id=trace_id,
                type="span_end",
                name="agent",
                observation_id=oid,
                timestamp=at + timedelta(milliseconds=8),
                output=output,
                duration_ms=8.0,
                kind="agent",
                role="agent",
            ),
        ]
    ok = status == "success"
    evaluation = CaseEvaluation(
        verdict=verdict,  # type: ignore[arg-type]
        score=1.0 if verdict == "passed" else 0.0 if verdict == "failed" else None,
        threshold=0.5,
        evaluators=[
            EvaluatorResult(
                name="polite",
                type="rule_based",
                status=verdict,  # type: ignore[arg-type]
                score=1.0 if verdict == "passed" else 0.0,
                reason="checked",
            )
        ],
    )
    turns = [
        {"role": "user", "content": input_text},
        {"role": "assistant", "content": output},
        {"role": "user", "content": "Thanks, and one more thing?"},
        {"role": "assistant", "content": f"Sure ({i})."},
    ]
    return TraceRecord(
        trace_id=trace_id,
        case_id=f"in{i % 7:02d}-{persona}-it{i // 21}-{i}",
        iteration=i // 21,
        persona=persona,
        input=input_text,
        output=output if ok else None,
        duration_ms=50.0 + (i * 37) % 400,
        success=ok,
        status=status,  # type: ignore[arg-type]
        error=None
        if ok
        else ErrorInfo(
            kind="agent",
            type="ValueError",
            message=f"broke {i}",
            traceback="Traceback...\nValueError",
        ),
        started_at=start,
        completed_at=start + timedelta(milliseconds=500),
        multi_turn=MultiTurnInfo(enabled=True, turn_count=2, termination_reason="done"),
        conversation_state={"turns": turns if ok else turns[:1]},
        token_usage={
            "agent": {"total_tokens": 30 + i % 50, "calls": 1},
            "supervisor": {"total_tokens": 12, "calls": 1},
        },
        observations=obs,
        evaluation=evaluation if ok else None,
    )


def write_experiment(root: Path, records: list[TraceRecord], **options: Any) -> ExperimentFolder:
    """An experiment folder of ``records`` with its summary and evaluation block."""
    writer = ExperimentWriter.create(
        root,
        experiment_name="synthetic",
        description="made by tests",
        config_snapshot={"simulation": {"name": "synthetic", "iterations": 3}},
        metadata={},
        seed=1,
        total_cases=len(records),
        **options,
    )
    run = RunEvaluation(EvaluationSpec(ks=(1, 3), by_persona=True))
    for record in records:
        writer.append(record)
        run.add(record)
    writer.evaluation = run.finish().block
    writer.finish("complete", exit_code=1)
    return ExperimentFolder.open(writer.path)


class _Tags(HTMLParser):
    """Counts the elements of a page and collects any event-handler attribute."""

    def __init__(self) -> None:
        super().__init__()
        self.names: Counter[str] = Counter()
        self.handlers: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.names[tag] += 1
        self.handlers += [name for name, _ in attrs if name.startswith("on")]


def test_untrusted_content_is_escaped(tmp_path: Path) -> None:
    records = [
        make_record(0, output=EVIL, verdict="failed", persona='"><img src=y onerror=alert(3)>'),
        make_record(1, input_text="</textarea></details><script>alert(4)</script>"),
        make_record(2),
    ]
    html = render_report(write_experiment(tmp_path, records))
    # Nothing from the traces became markup: no script but ours, no image, no handler.
    tags = _Tags()
    tags.feed(html)
    assert tags.names["script"] == 1 and "img" not in tags.names
    assert not tags.handlers
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;/textarea&gt;&lt;/details&gt;&lt;script&gt;alert(4)" in html
    assert 'data-p="&quot;&gt;&lt;img src=y onerror=alert(3)&gt;"' in html


def test_secrets_of_this_environment_are_redacted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "plain-service-secret-4711"
    records = [
        make_record(0, verdict="failed", input_text=f"my token is {secret}", output=secret * 300),
        make_record(1, input_text=f"again {secret}"),
    ]
    folder = write_experiment(tmp_path, records)  # written before the variable existed
    assert secret in (folder.path / "traces.jsonl").read_text()
    monkeypatch.setenv("SERVICE_API_TOKEN", secret)
    html = render_report(folder)
    assert secret not in html
    assert secret[:12] not in html  # redacted before cut: no half of it either
    assert "my token is ***REDACTED***" in html


def test_page_loads_nothing_from_anywhere(tmp_path: Path) -> None:
    html = render_report(write_experiment(tmp_path, [make_record(i) for i in range(5)]))
    assert (
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">" in html
    )
    assert not re.search(r"\ssrc=", html)
    assert set(re.findall(r'\shref="(?!#)([^"]*)"', html)) <= {"data:,"}
    assert "@import" not in html and "url(" not in html


@pytest.mark.slow  # writing 3,000 records through the real writer takes ~10 s here
@pytest.mark.parametrize(("cases", "budget"), [(3000, 1_500_000)])
def test_size_budget_at_3000_cases(tmp_path: Path, cases: int, budget: int) -> None:
    check_budget(tmp_path, cases, budget)


def test_size_budget_small(tmp_path: Path) -> None:
    check_budget(tmp_path, 300, 150_000)


def check_budget(tmp_path: Path, cases: int, budget: int) -> None:
    """A run with a failing case in ten, each failure with a 30,000-character output, fits
    ``budget``; failures are shown first, cut, and their notes point at the right line."""
    long_text = "word " * 6000  # 30,000 characters
    records = [
        make_record(
            i,
            output=long_text if i % 10 == 0 else None,
            verdict="failed" if i % 10 == 0 else "passed",
            observations=8 if i % 10 == 0 else 4,
        )
        for i in range(cases)
    ]
    folder = write_experiment(tmp_path, records)
    html = render_report(folder, max_bytes=budget)
    size = len(html.encode("utf-8"))
    assert size <= budget * 1.02, size
    # The failures come first and are shown in full; the long outputs are cut with a note
    # naming the line of traces.jsonl that holds them, and that line is that case's.
    failures = html[html.index('id="failures"') : html.index('id="evaluators"')]
    assert failures.count('<details class="case"') >= 10
    notes = re.findall(r"the full text is in traces\.jsonl line (\d+)", html)
    assert notes
    lines = (folder.path / "traces.jsonl").read_text(encoding="utf-8").splitlines()
    for match in re.finditer(
        r'<details class="case" id="c-\d+"[^>]*>.*?</details>\s*</div>', failures
    ):
        block = match.group(0)
        case = re.search(r"<dt>trace</dt><dd>(t\d+)</dd>", block)
        line = re.search(r"traces\.jsonl line (\d+)", block)
        if case and line:
            assert json.loads(lines[int(line.group(1)) - 1])["trace_id"] == case.group(1)
    # Rows that did not fit are counted, never silently dropped.
    listed = html.count("<tr data-o=")
    assert listed >= cases // 10  # every failure at least
    shown = failures.count('<details class="case"')
    if shown < cases // 10:
        assert f"{shown:,} of {cases // 10:,} cases that need attention are shown" in html
    if listed < cases:
        assert f"{cases - listed:,} more cases not listed" in html


def test_rows_past_the_budget_are_counted(tmp_path: Path) -> None:
    records = [make_record(i, verdict="failed" if i < 5 else "passed") for i in range(400)]
    html = render_report(write_experiment(tmp_path, records), max_bytes=100_000)
    listed = re.findall(r'<tr data-o="(\w+)"', html)
    assert 0 < len(listed) < 400
    assert listed[:5] == ["failed"] * 5  # failures are never the ones left out first
    assert f"{400 - len(listed):,} more cases not listed ({400 - len(listed):,} passed)" in html
    assert len(html.encode()) <= 100_000


def test_every_case_listed_when_it_fits(tmp_path: Path) -> None:
    folder = write_experiment(tmp_path, [make_record(i) for i in range(40)])
    html = render_report(folder)
    assert html.count("<tr data-o=") == 40
    assert html.count('<details class="case"') == 40
    assert "more cases not listed" not in html


def test_failures_first_and_headline(tmp_path: Path) -> None:
    records = [make_record(i) for i in range(9)]
    records[4] = make_record(4, verdict="failed")
    records[7] = make_record(7, status="error")
    records[8] = make_record(8, verdict="unscored")
    folder = write_experiment(tmp_path, records)
    html = render_report(folder)
    rows = re.findall(r'<tr data-o="(\w+)"', html)
    assert rows[:3] == ["error", "failed", "unscored"] or sorted(rows[:3]) == [
        "error",
        "failed",
        "unscored",
    ]
    assert rows[3:] == ["passed"] * 6
    overall = folder.summary["evaluation"]["reliability"]["overall"]
    rate = f"{overall['success_rate'] * 100:.1f}%"
    assert re.search(rf'data-k="pass-rate">.*?<div class="v">{re.escape(rate)}</div>', html)
    assert re.search(r'data-k="unscored">.*?<div class="v">1</div>', html)
    assert "broke 7" in html  # the error message of the failing case
    assert "Traceback" in html


def test_without_traces_jsonl(tmp_path: Path) -> None:
    folder = write_experiment(
        tmp_path, [make_record(i, output="x" * 9000) for i in range(3)], save_traces=False
    )
    html = render_report(folder)
    assert "Thanks, and one more thing?" in html
    assert "the full text is in trace_summary.jsonl line" in html


def test_folder_without_summary(tmp_path: Path) -> None:
    folder = write_experiment(tmp_path, [make_record(i) for i in range(4)])
    (folder.path / "summary.json").unlink()
    html = render_report(ExperimentFolder.open(folder.path))
    assert 'data-k="cases"><div class="lbl">Cases</div><div class="v">4</div>' in html


def test_baseline_section(tmp_path: Path) -> None:
    base = write_experiment(tmp_path / "a", [make_record(i) for i in range(6)])
    records = [make_record(i) for i in range(6)]
    records[2] = make_record(2, verdict="failed")
    new = write_experiment(tmp_path / "b", records)
    html = render_report(new, baseline=base)
    section = html[html.index('id="baseline"') :]
    assert "Newly failing cases (1)" in section
    assert records[2].case_id in section
    assert 'data-k="regressed">Regressed' in section


def test_write_report_paths(tmp_path: Path) -> None:
    folder = write_experiment(tmp_path, [make_record(0)])
    path = write_report(folder.path)
    assert path == folder.path / REPORT_FILE and path.read_text().startswith("<!DOCTYPE html>")
    assert write_report(folder.path) == path  # an earlier report is replaced
    with pytest.raises(ConfigError, match="own file"):
        write_report(folder.path, folder.path / "summary.json")
    other = tmp_path / "notes.html"
    other.write_text("mine")
    with pytest.raises(ConfigError, match="--overwrite"):
        write_report(folder.path, other)
    assert other.read_text() == "mine"
    assert write_report(folder.path, other, overwrite=True) == other
    nested = tmp_path / "out" / "deep" / "r.html"
    assert write_report(folder.path, nested).is_file()


def test_cli_report(tmp_path: Path) -> None:
    folder = write_experiment(tmp_path, [make_record(i) for i in range(3)])
    runner = CliRunner()
    result = runner.invoke(cli, ["report", str(folder.path)])
    assert result.exit_code == 0, result.output
    assert "Report:" in result.output and (folder.path / REPORT_FILE).is_file()
    out = tmp_path / "r.html"
    result = runner.invoke(
        cli, ["report", str(folder.path), "-o", str(out), "-b", str(folder.path)]
    )
    assert result.exit_code == 0, result.output
    assert "Against the baseline" in out.read_text()
    result = runner.invoke(cli, ["report", str(tmp_path)])
    assert result.exit_code == 4
    assert "not a FluxLoop experiment folder" in result.output
