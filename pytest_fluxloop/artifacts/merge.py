"""Join the experiment folders of CI shards (``--shard K/N``) into one experiment folder.

Each folder is read as ``--resume`` reads it (:func:`~.resume.read_resume_state`: whole lines
only, the latest ``trace_summary.jsonl`` line of a case is its result); the full record of
that result comes from ``traces.jsonl`` (by its ``trace_id``), or is rebuilt from the summary
line when the folder has no ``traces.jsonl`` (``save_traces: false``). A case found in more
than one folder keeps its latest attempt (the later ``completed_at``; a tie: the folder given
last). Every folder must hold the same experiment: the same config snapshot (``config.yaml``)
apart from the output directory, and the same number of shards.

The merged folder is written by the one :class:`~.writer.ExperimentWriter`, record by record,
so its files have the run's formats and ``summary.json`` is counted as a run counts it. It is
built in a hidden folder next to the output and renamed into place at the end: the output
appears whole or not at all. Its ``summary.json`` says ``complete`` only when every shard
1..N is there and each shard's run was complete; otherwise ``incomplete``, with the missing
and unfinished shards under ``merge``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from ..errors import FluxloopError
from ..records import ErrorInfo, TraceRecord
from ..redact import Redactor
from .paths import check_output_option, check_writable, resolve_output_root
from .resume import ResumeState, parse_time, read_resume_state
from .writer import (
    CONFIG_FILE,
    DEFAULT_MAX_FIELD_CHARS,
    METADATA_FILE,
    SUMMARY_FILE,
    TRACE_SUMMARY_FILE,
    TRACES_FILE,
    ExperimentWriter,
    FinalStatus,
)

__all__ = ["MergeError", "MergeResult", "merge_experiments", "read_shard_folder"]

IGNORED_CONFIG_KEYS: frozenset[tuple[str, ...]] = frozenset({("simulation", "output_directory")})
"""Config snapshot keys shards of one experiment may differ in (``--output-dir``); the shard
itself is not in the snapshot."""

_PLAN_SHARD = re.compile(r"= (\d+) runs?; shard (\d+)/(\d+): ")
_WRITER_KEYS = frozenset(
    {"run_id", "started_at", "fluxloop_version", "python_version", "platform", "host"}
)


class MergeError(FluxloopError):
    """The folders can't be merged (not experiment folders, different experiments, an
    output folder that exists)."""


@dataclass
class ShardFolder:
    """One experiment folder given to merge, read."""

    path: Path
    summary: dict[str, Any]
    metadata: dict[str, Any]
    config: dict[str, Any]
    shard: tuple[int, int] | None
    """(K, N) of the run, or None when it ran every case."""
    experiment_total: int | None
    """Cases of the whole experiment, as the shard's plan counted them."""
    records: list[dict[str, Any]] = field(default_factory=list)
    """The latest attempt of each case, as JSON records, in file order."""
    rebuilt: bool = False
    """True: no ``traces.jsonl``, records were rebuilt from ``trace_summary.jsonl``."""

    @property
    def shard_text(self) -> str:
        return f"{self.shard[0]}/{self.shard[1]}" if self.shard else "all"


@dataclass
class MergeResult:
    """What :func:`merge_experiments` wrote."""

    path: Path
    status: str
    total_cases: int
    total_traces: int
    shards: list[str]
    missing_shards: list[str]
    unfinished: list[str]
    notices: list[str]


def read_shard_folder(path: Path) -> ShardFolder:
    """Read one experiment folder (MergeError when it is not one)."""
    path = Path(path).expanduser()
    if not path.is_dir() or not (path / TRACE_SUMMARY_FILE).is_file():
        raise MergeError(
            f"{path} is not a FluxLoop experiment folder (no {TRACE_SUMMARY_FILE}); pass the "
            "exp_<timestamp> folders the shard runs wrote"
        )
    state = read_resume_state(path)
    summary = _read_json(path / SUMMARY_FILE)
    metadata = _read_json(path / METADATA_FILE)
    config = _read_config(path, summary)
    shard, total = _shard_of(metadata)
    folder = ShardFolder(path, summary, metadata, config, shard, total)
    if (path / TRACES_FILE).is_file():
        folder.records = _latest_records(path / TRACES_FILE, state)
    else:
        folder.records = _rebuilt_records(path, state)
        folder.rebuilt = True
    return folder


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise MergeError(f"{path}: unreadable ({exc})") from None
    return data if isinstance(data, dict) else {}


def _read_config(path: Path, summary: dict[str, Any]) -> dict[str, Any]:
    config_file = path / CONFIG_FILE
    if config_file.is_file():
        try:
            data = yaml.safe_load(config_file.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise MergeError(f"{config_file}: unreadable ({exc})") from None
        if isinstance(data, dict):
            return data
    snapshot = summary.get("config_snapshot")
    if isinstance(snapshot, dict):
        return snapshot
    raise MergeError(
        f"{path} has no config snapshot ({CONFIG_FILE} or summary.json config_snapshot), so "
        "it can't be checked to be the same experiment as the others"
    )


def _shard_of(metadata: dict[str, Any]) -> tuple[tuple[int, int] | None, int | None]:
    """The folder's shard and the experiment's total cases, from ``metadata.json``: its
    ``shard``/``experiment_total_cases`` keys, else the plan line (``...; shard 1/3: ...``)."""
    shard = metadata.get("shard")
    total = metadata.get("experiment_total_cases")
    if isinstance(shard, str) and "/" in shard:
        k, _, n = shard.partition("/")
        if k.isdigit() and n.isdigit():
            return (int(k), int(n)), total if isinstance(total, int) else None
    plan = metadata.get("plan")
    match = _PLAN_SHARD.search(plan) if isinstance(plan, str) else None
    if match is None:
        return None, None
    return (int(match.group(2)), int(match.group(3))), int(match.group(1))


def _latest_records(traces: Path, state: ResumeState) -> list[dict[str, Any]]:
    """The full record of each case's latest result: the trace ``state`` holds for it (the
    latest ``trace_summary.jsonl`` line, resume's rule), found in ``traces.jsonl``."""
    wanted = {line.get("trace_id"): case for case, line in state.done.items()}
    found: dict[str, dict[str, Any]] = {}
    rerun: dict[str, dict[str, Any]] = {}  # crashed/simulator errors: still this run's result
    for record in _read_lines(traces):
        trace_id = record.get("trace_id")
        case_id = record.get("case_id")
        if trace_id not in state.trace_ids or not isinstance(case_id, str):
            continue  # not listed in trace_summary.jsonl: never finished
        if wanted.get(trace_id) == case_id:
            found[case_id] = record
        elif case_id in state.rerun:
            rerun[case_id] = record  # the last one listed is the latest
    return [*found.values(), *rerun.values()]


def _rebuilt_records(path: Path, state: ResumeState) -> list[dict[str, Any]]:
    """Records rebuilt from ``trace_summary.jsonl`` lines (no ``traces.jsonl``): what the
    summary line holds; the rest (observations, conversation state) is lost."""
    latest: dict[str, dict[str, Any]] = {}
    for line in _read_lines(path / TRACE_SUMMARY_FILE):
        if line.get("trace_id") in state.trace_ids and isinstance(line.get("case_id"), str):
            latest[line["case_id"]] = line
    started = state.started_at.isoformat() if state.started_at else None
    records = []
    for line in latest.values():
        record = {key: line.get(key) for key in TraceRecord.model_fields if key in line}
        record.setdefault("started_at", started)
        record.setdefault("completed_at", started)
        if line.get("error") is not None:
            record["error"] = ErrorInfo(
                kind=line.get("error_kind") or "agent", type="Error", message=str(line["error"])
            ).model_dump(mode="json")
        records.append(record)
    return records


def _read_lines(path: Path) -> list[dict[str, Any]]:
    """Whole JSON lines of a JSONL file (a torn or broken line is skipped, as resume does)."""
    data = path.read_bytes()
    lines = []
    for text in data[: data.rfind(b"\n") + 1].decode("utf-8", errors="replace").splitlines():
        try:
            value = json.loads(text)
        except ValueError:
            continue
        if isinstance(value, dict):
            lines.append(value)
    return lines


def first_difference(a: Any, b: Any, where: tuple[str, ...] = ()) -> tuple[str, ...] | None:
    """The first key path where ``a`` and ``b`` differ (``IGNORED_CONFIG_KEYS`` skipped)."""
    if where in IGNORED_CONFIG_KEYS:
        return None
    if isinstance(a, dict) and isinstance(b, dict):
        for key in [*a, *(k for k in b if k not in a)]:
            found = first_difference(a.get(key), b.get(key), (*where, str(key)))
            if found is not None:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for index, (x, y) in enumerate(zip(a, b, strict=True)):
            found = first_difference(x, y, (*where, str(index)))
            if found is not None:
                return found
        return None
    return None if a == b else where


def _value_at(data: Any, key_path: tuple[str, ...]) -> Any:
    for key in key_path:
        if isinstance(data, dict):
            data = data.get(key)
        elif isinstance(data, list) and key.isdigit() and int(key) < len(data):
            data = data[int(key)]
        else:
            return None
    return data


def check_same_experiment(folders: list[ShardFolder]) -> None:
    """MergeError naming two folders and the first differing config key, or the shard
    counts, when they are not shards of one experiment."""
    first = folders[0]
    for other in folders[1:]:
        diff = first_difference(first.config, other.config)
        if diff is not None:
            key = ".".join(diff) or "(the whole snapshot)"
            raise MergeError(
                f"{first.path} and {other.path} are not the same experiment: their config "
                f"snapshots differ at {key} ({_value_at(first.config, diff)!r} vs "
                f"{_value_at(other.config, diff)!r}); merge only the shards of one "
                "experiment (same config, inputs and iterations)"
            )
    counts = {f.shard[1] if f.shard else 1 for f in folders}
    if len(counts) > 1:
        listed = ", ".join(f"{f.path} ({f.shard_text})" for f in folders)
        raise MergeError(
            f"the folders were run with different numbers of shards: {listed}; merge the "
            "shards of one --shard K/N split"
        )
    totals = {f.experiment_total for f in folders if f.experiment_total is not None}
    if len(totals) > 1:
        listed = ", ".join(f"{f.path} ({f.experiment_total})" for f in folders)
        raise MergeError(
            f"the folders plan different numbers of cases for the whole experiment: {listed}; "
            "the inputs or iterations differ between the shard runs"
        )


def prepare_output(output: Path | str, *, overwrite: bool, cwd: Path | None = None) -> Path:
    """The merged folder's path under the output options' rule (a relative path stays inside
    the current directory); MergeError when it exists, unless ``overwrite`` and it is an
    experiment folder or empty."""
    base = Path.cwd() if cwd is None else cwd
    check_output_option("--output", output, base)
    path = resolve_output_root(output, None, base=base)
    if path.exists():
        if not overwrite:
            raise MergeError(
                f"--output {output}: {path} exists; choose a new folder or pass "
                "--overwrite to replace it"
            )
        if not path.is_dir() or (
            any(path.iterdir())
            and not (path / SUMMARY_FILE).is_file()
            and not (path / TRACE_SUMMARY_FILE).is_file()
        ):
            raise MergeError(
                f"--output {output}: {path} is not an experiment folder; --overwrite replaces "
                "only an experiment folder (or an empty one)"
            )
    check_writable(path.parent)
    return path


def merge_experiments(
    sources: list[Path], output: Path | str, *, overwrite: bool = False, cwd: Path | None = None
) -> MergeResult:
    """Merge experiment folders ``sources`` into the new experiment folder ``output``."""
    if not sources:
        raise MergeError("give at least one experiment folder to merge")
    target = prepare_output(output, overwrite=overwrite, cwd=cwd)
    resolved = [Path(s).expanduser().resolve() for s in sources]
    if target.resolve() in resolved:
        raise MergeError(f"--output {output} is one of the folders being merged")
    folders = [read_shard_folder(p) for p in sources]
    check_same_experiment(folders)

    # Latest attempt of each case wins across folders too.
    chosen: dict[str, tuple[datetime, int, dict[str, Any]]] = {}
    order: list[str] = []
    for index, folder in enumerate(folders):
        for record in folder.records:
            case_id = record["case_id"]
            when = parse_time(record.get("completed_at")) or datetime.min
            rank = (_naive(when), index)
            if case_id not in chosen:
                order.append(case_id)
            elif (_naive(chosen[case_id][0]), chosen[case_id][1]) > rank:
                continue
            chosen[case_id] = (when, index, record)

    count = folders[0].shard[1] if folders[0].shard else 1
    present = {f.shard[0] if f.shard else 1 for f in folders}
    missing = [f"{k}/{count}" for k in range(1, count + 1) if k not in present]
    unfinished = [str(f.path) for f in folders if f.summary.get("status") != "complete"]
    notices: list[str] = []
    seeds = {f.summary.get("seed") for f in folders}
    if len(seeds) > 1:
        notices.append(
            "the shards ran with different run seeds (seed: null in the config draws one per "
            "run); set seed in simulation.yaml for reproducible case seeds"
        )
    rebuilt = [str(f.path) for f in folders if f.rebuilt]
    if rebuilt:
        notices.append(
            f"no {TRACES_FILE} in {', '.join(rebuilt)} (save_traces: false): their records "
            f"were rebuilt from {TRACE_SUMMARY_FILE}, without observations"
        )

    totals = [f.experiment_total for f in folders if f.experiment_total is not None]
    if totals:
        total_cases = totals[0]
    else:  # unsharded folders: each planned the whole experiment
        total_cases = max(int(f.summary.get("total_cases") or 0) for f in folders)
    total_cases = max(total_cases, len(chosen))
    # A shard that is missing or did not finish: cases are missing, not stopped by a signal.
    status: FinalStatus = "complete" if not missing and not unfinished else "incomplete"

    first = folders[0]
    sim = first.config.get("simulation") if isinstance(first.config.get("simulation"), dict) else {}
    assert isinstance(sim, dict)
    max_chars = sim.get("artifact_field_max_chars")
    starts = [t for t in (parse_time(f.summary.get("started_at")) for f in folders) if t]
    metadata = {k: v for k, v in first.metadata.items() if k not in _WRITER_KEYS}
    for key in ("shard", "pytest_args"):  # the first shard's, not the merged folder's
        metadata.pop(key, None)
    if isinstance(metadata.get("plan"), str):
        metadata["plan"] = metadata["plan"].split("; shard ")[0]
    merge_info = {
        "sources": [str(p) for p in resolved],
        "shards": sorted({f.shard_text for f in folders}),
        "missing_shards": missing,
        "unfinished_sources": unfinished,
    }
    metadata.update(experiment_total_cases=total_cases, merged=merge_info)

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".fluxloop-merge-", dir=target.parent))
    try:
        writer = ExperimentWriter.create(
            staging,
            experiment_name=str(
                first.summary.get("experiment_name") or sim.get("name") or "merged"
            ),
            description=str(first.summary.get("description") or sim.get("description") or ""),
            config_snapshot=first.config,
            metadata=metadata,
            seed=seeds.pop() if len(seeds) == 1 else None,
            total_cases=total_cases,
            save_traces=not rebuilt and sim.get("save_traces", True) is not False,
            save_aggregated_metrics=True,
            now=min(starts) if starts else None,
            redactor=Redactor(),
            max_field_chars=max_chars if isinstance(max_chars, int) else DEFAULT_MAX_FIELD_CHARS,
        )
        with writer:
            for case_id in order:
                writer.append(TraceRecord.model_validate(chosen[case_id][2]))
            writer.leaked_threads = sum(int(f.summary.get("leaked_threads") or 0) for f in folders)
            codes = [f.summary.get("exit_code") for f in folders]
            exit_code = (
                max(c for c in codes if isinstance(c, int))
                if all(isinstance(c, int) for c in codes)
                else None
            )
            writer.finish(
                status,
                exit_code=exit_code,
                extra={"merge": merge_info},
            )
        if target.exists():
            old = staging / "replaced"
            os.replace(target, old)
        os.replace(writer.path, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return MergeResult(
        path=target,
        status=status,
        total_cases=total_cases,
        total_traces=len(chosen),
        shards=merge_info["shards"],
        missing_shards=missing,
        unfinished=unfinished,
        notices=notices,
    )


def _naive(value: datetime) -> datetime:
    return (
        value.replace(tzinfo=None)
        if value.tzinfo is None
        else value.astimezone().replace(tzinfo=None)
    )
