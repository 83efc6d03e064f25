"""An experiment's evaluation figures, for folders of every age.

A run since evaluation verdicts exist has them in ``summary.json`` (``evaluation``); for an
older folder, or one whose summary was never written (a run that died), they are computed
again from its ``trace_summary.jsonl`` lines, with no evaluation.yaml: reliability by agent
success alone.
"""

from __future__ import annotations

from typing import Any

from ..artifacts.reader import ExperimentFolder
from ..evaluation.run_stats import RunEvaluation
from ..evaluation.spec import EvaluationSpec

__all__ = ["run_figures"]


def run_figures(folder: ExperimentFolder, ks: tuple[int, ...] | None = None) -> dict[str, Any]:
    """The ``evaluation`` block of ``folder``: its summary's, else computed from its lines.

    ``ks`` forces the pass@k / pass^k values computed (then the block is always computed,
    so two runs compared side by side have the same k's).
    """
    block = folder.summary.get("evaluation")
    if isinstance(block, dict) and block and ks is None:
        return block
    lines = folder.summary_lines()
    if ks is None:
        iterations = max((int(line.get("iteration") or 0) for line in lines), default=0) + 1
        ks = tuple(sorted({1, *([3] if iterations >= 3 else []), iterations}))
    run = RunEvaluation(EvaluationSpec(ks=ks, by_persona=True))
    for line in lines:
        run.add_line(line)
    return run.finish().block
