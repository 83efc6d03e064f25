"""Resume an experiment folder: find what is done, reopen the folder for the rest.

A case counts as done when its latest line in ``trace_summary.jsonl`` is a real result
(``success``, an agent ``error`` or a ``timeout``). Cases that are missing, ``crashed`` or
failed for simulator reasons (``supervisor_error``, error kind ``infrastructure``) run
again; their new lines are appended after the old ones, and the summary counts the latest
line of each case, so the counts reconcile.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ..errors import ResumeError
from ..redact import Redactor
from .writer import SUMMARY_FILE, TRACE_SUMMARY_FILE, ExperimentWriter, write_atomic

RERUN_STATUSES = frozenset({"crashed", "supervisor_error"})
RERUN_ERROR_KINDS = frozenset({"infrastructure", "supervisor"})


@dataclass
class ResumeState:
    """What an earlier run of the experiment left behind."""

    path: Path
    seed: int | None
    started_at: datetime | None
    done: dict[str, dict[str, Any]] = field(default_factory=dict)
    rerun: set[str] = field(default_factory=set)
    runs: list[str] = field(default_factory=list)

    def is_done(self, case_id: str) -> bool:
        """True if ``case_id`` already has a real result."""
        return case_id in self.done


def read_resume_state(path: Path) -> ResumeState:
    """Read ``path``'s summary and trace summaries (a torn last line is skipped, with a warning)."""
    path = path.expanduser().resolve()
    lines_file = path / TRACE_SUMMARY_FILE
    if not lines_file.is_file():
        raise ResumeError(
            f"{path} is not a FluxLoop experiment folder (no {TRACE_SUMMARY_FILE}); pass the "
            "exp_<timestamp> folder of the run to resume"
        )
    summary: dict[str, Any] = {}
    summary_file = path / SUMMARY_FILE
    if summary_file.is_file():
        try:
            summary = json.loads(summary_file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ResumeError(f"{summary_file}: unreadable ({exc})") from None
    latest: dict[str, dict[str, Any]] = {}
    raw = lines_file.read_text(encoding="utf-8").splitlines()
    for number, text in enumerate(raw, start=1):
        if not text.strip():
            continue
        try:
            line = json.loads(text)
        except json.JSONDecodeError:
            # The run was killed mid-write: that line is lost, its case simply runs again.
            warnings.warn(f"{lines_file}:{number}: skipping a truncated line", stacklevel=2)
            continue
        if isinstance(line, dict) and isinstance(line.get("case_id"), str):
            latest[line["case_id"]] = line
    state = ResumeState(
        path=path,
        seed=summary.get("seed") if isinstance(summary.get("seed"), int) else None,
        started_at=_parse_time(summary.get("started_at")),
        runs=[*summary.get("resumed_runs", []), summary.get("run_id", "?")] if summary else [],
    )
    for case_id, line in latest.items():
        if line.get("status") in RERUN_STATUSES or line.get("error_kind") in RERUN_ERROR_KINDS:
            state.rerun.add(case_id)
        else:
            state.done[case_id] = line
    return state


def check_matches(state: ResumeState, case_ids: set[str]) -> None:
    """Refuse to resume a folder whose cases don't belong to this experiment."""
    unknown = sorted((set(state.done) | state.rerun) - case_ids)
    if unknown:
        sample = ", ".join(unknown[:3])
        raise ResumeError(
            f"{state.path} holds {len(unknown)} case(s) this config doesn't produce ({sample}); "
            "resume with the same config, inputs and iterations (and the same seed)"
        )


def reopen_writer(
    state: ResumeState,
    *,
    experiment_name: str,
    description: str,
    config_snapshot: dict[str, Any],
    total_cases: int,
    save_traces: bool,
    save_aggregated_metrics: bool,
) -> ExperimentWriter:
    """An ExperimentWriter appending to ``state.path``, seeded with the done cases."""
    redactor = Redactor()
    writer = ExperimentWriter(
        state.path,
        experiment_name=experiment_name,
        description=description,
        config_snapshot=redactor(config_snapshot),
        seed=state.seed,
        total_cases=total_cases,
        started_at=state.started_at or datetime.now().astimezone(),
        save_traces=save_traces,
        save_aggregated_metrics=save_aggregated_metrics,
        redactor=redactor,
    )
    writer.count_existing(state.done.values())
    if save_aggregated_metrics:
        running = writer.summary("running").model_dump(mode="json")
        running["resumed_runs"] = state.runs
        write_atomic(state.path / SUMMARY_FILE, json.dumps(running, indent=2).encode("utf-8"))
    return writer


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
