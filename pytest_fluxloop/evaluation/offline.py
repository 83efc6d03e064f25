"""``fluxloop evaluate experiment DIR``: evaluate an experiment that already ran.

The agent is not run again: the traces are read from ``traces.jsonl`` (or, for a run with
``save_traces: false``, from ``trace_summary.jsonl``, which has no observations), evaluated
with the experiment's ``evaluation.yaml`` (or ``--config``), and the results are written to a
folder inside the experiment (``evaluation/`` by default): ``summary.json``, ``per_trace.jsonl``
and a Markdown report. The experiment's own files are never changed. Judge results come from
the same cache as the run's, so evaluating twice calls no judge twice.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..artifacts.paths import folder_inside
from ..artifacts.reader import ExperimentFolder
from ..artifacts.writer import (
    METADATA_FILE,
    SUMMARY_FILE,
    TRACE_SUMMARY_FILE,
    TRACES_FILE,
)
from ..atomicfile import write_atomic
from ..errors import ConfigError
from ..jsonsafe import to_jsonable
from ..records import SUMMARY_KEYS, TraceRecord, utcnow
from .case import CaseEvaluator
from .run_stats import EvaluationOutcome, RunEvaluation
from .spec import compile_evaluation

if TYPE_CHECKING:
    from ..config.loader import LoadedConfig

__all__ = ["OfflineResult", "evaluate_experiment", "experiment_config_path", "read_traces"]

PER_TRACE_FILE = "per_trace.jsonl"
REPORT_FILE = "report.md"


@dataclass
class OfflineResult:
    """What ``evaluate_experiment`` did."""

    output: Path
    traces: int
    outcome: EvaluationOutcome
    source: str
    """The file the traces were read from."""


def experiment_config_path(directory: Path) -> Path | None:
    """The simulation.yaml an experiment folder was run with (its ``metadata.json``), if it
    is still there."""
    try:
        meta = json.loads((directory / METADATA_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    value = meta.get("config_path") if isinstance(meta, dict) else None
    path = Path(value) if isinstance(value, str) and value else None
    return path if path is not None and path.is_file() else None


def read_traces(directory: Path) -> tuple[list[TraceRecord], str]:
    """The traces of an experiment folder (the latest record of each case) and the file they
    came from (``traces.jsonl``, else ``trace_summary.jsonl``), read through
    :class:`~pytest_fluxloop.artifacts.reader.ExperimentFolder`.

    Raises:
        ConfigError: not an experiment folder (or one in a newer format), a line that is not
            JSON (naming the file and line), or a record that is not a trace (naming the
            file and the trace).
    """
    from pydantic import ValidationError

    folder = ExperimentFolder.open(directory)
    full = folder.has_traces
    source = TRACES_FILE if full else TRACE_SUMMARY_FILE
    records: list[TraceRecord] = []
    for line in folder.iter_traces():
        data = {k: v for k, v in line.items() if k != "evaluation"}  # evaluated again
        if not full:
            data = _from_summary_line(data)
        try:
            records.append(TraceRecord.model_validate(data))
        except ValidationError as exc:
            raise ConfigError(
                f"{folder.path / source}: trace {line.get('trace_id')!r} (case "
                f"{line.get('case_id')!r}): not a trace record ({exc})"
            ) from None
    return records, source


def _from_summary_line(line: dict[str, Any]) -> dict[str, Any]:
    """A ``trace_summary.jsonl`` line as a record (no observations, no metadata)."""
    data = {k: v for k, v in line.items() if k in SUMMARY_KEYS}
    data.setdefault("case_id", data.get("trace_id", ""))
    when = utcnow().isoformat()
    data.setdefault("started_at", when)
    data.setdefault("completed_at", when)
    data.setdefault("status", "success" if data.get("success") else "error")
    if line.get("error"):
        kind = line.get("error_kind") or "agent"
        kind_of = line.get("error_type") or "Error"
        data["error"] = {"kind": kind, "type": kind_of, "message": str(line["error"])}
    conversation = line.get("conversation")
    if isinstance(conversation, list) and len(conversation) > 2:
        turns = [
            {"role": e.get("role"), "content": e.get("content")}
            for e in conversation
            if isinstance(e, dict)
        ]
        data["multi_turn"] = {
            "enabled": True,
            "turn_count": sum(t["role"] != "user" for t in turns),
            "termination_reason": line.get("termination_reason"),
        }
        data["conversation_state"] = {"turns": turns}
    return data


def evaluate_experiment(
    directory: Path,
    cfg: LoadedConfig,
    *,
    output: str = "evaluation",
    overwrite: bool = False,
    gates: Sequence[str] = (),
    strict_judges: bool = False,
) -> OfflineResult:
    """Evaluate the traces of ``directory`` with ``cfg``'s evaluation and write the results.

    Raises:
        ConfigError: not an experiment, a bad evaluation config, or an output folder that
            exists (without ``overwrite``) or leads outside the experiment.
    """
    ExperimentFolder.open(directory)  # "not an experiment" before anything about the output
    target = folder_inside(directory, output)
    if target.exists() and not overwrite:
        raise ConfigError(
            f"{target} already exists; pass --overwrite to replace it, or --output another folder"
        )
    records, source = read_traces(directory)
    spec = compile_evaluation(cfg, gates=gates)
    if not spec.evaluates_traces and not spec.gates:
        raise ConfigError(
            f"{cfg.sources.get('evaluation', cfg.config_path)}: no evaluators are enabled and "
            "no gate is given; nothing to evaluate"
        )
    evaluator = CaseEvaluator(spec)
    # Judges wait on the network: evaluate traces concurrently (the judges' own cap holds).
    with ThreadPoolExecutor(max_workers=max(1, spec.concurrency)) as pool:
        for record in records:
            record.token_usage = _without_judge(record.token_usage)
        list(pool.map(evaluator.apply, records))
    run = RunEvaluation(spec, strict_judges=strict_judges)
    for record in records:
        run.add(record)
    outcome = run.finish()
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    redactor = cfg.redactor()
    lines = [json.dumps(redactor(_per_trace(r)), ensure_ascii=False) for r in records]
    write_atomic(target / PER_TRACE_FILE, ("\n".join(lines) + "\n" if lines else "").encode())
    summary = {
        "experiment_dir": str(directory.resolve()),
        "evaluated_at": utcnow().isoformat(),
        "source": source,
        "config": str(cfg.config_path),
        "evaluation_config": str(cfg.sources.get("evaluation", "")) or None,
        "traces": len(records),
        "passed": not outcome.fails_run,
        "evaluation": outcome.block,
    }
    data = json.dumps(redactor(to_jsonable(summary)), ensure_ascii=False, indent=2) + "\n"
    write_atomic(target / SUMMARY_FILE, data.encode("utf-8"))
    from .markdown import render_report

    report_name = spec.report_file or REPORT_FILE
    report = redactor.redact_text(render_report(directory, records, spec, outcome))
    report_path = folder_inside(target, report_name, "output.summary_file", inside="the folder")
    write_atomic(report_path, report.encode("utf-8"))
    return OfflineResult(output=target, traces=len(records), outcome=outcome, source=source)


def _without_judge(usage: dict[str, Any] | None) -> dict[str, Any] | None:
    # A re-evaluation replaces the earlier judge's tokens rather than adding to them.
    if not usage or "judge" not in usage:
        return usage
    rest = {k: v for k, v in usage.items() if k != "judge"}
    return rest or None


def _per_trace(record: TraceRecord) -> dict[str, Any]:
    evaluation = record.evaluation
    return {
        "trace_id": record.trace_id,
        "case_id": record.case_id,
        "iteration": record.iteration,
        "persona": record.persona,
        "input": record.input,
        "success": record.success,
        "status": record.status,
        "duration_ms": record.duration_ms,
        "verdict": evaluation.verdict if evaluation is not None else None,
        "score": evaluation.score if evaluation is not None else None,
        "reason": evaluation.reason if evaluation is not None else None,
        "evaluators": [e.model_dump(mode="json") for e in evaluation.evaluators]
        if evaluation is not None
        else [],
        "judge_tokens": (record.token_usage or {}).get("judge"),
    }
