"""Reading captured LLM calls out of a trace, for the provider capture tests."""

from __future__ import annotations

from pytest_fluxloop.records import Observation
from pytest_fluxloop.sdk.context import TraceContext


def generations(ctx: TraceContext) -> list[tuple[Observation, Observation]]:
    """Each generation's (span_start, span_end); every start has exactly one end."""
    starts = [o for o in ctx.observations if o.type == "span_start" and o.kind == "generation"]
    ends = [o for o in ctx.observations if o.type == "span_end" and o.kind == "generation"]
    assert sorted(o.observation_id or "" for o in ends) == sorted(
        o.observation_id or "" for o in starts
    )
    by_id = {o.observation_id: o for o in ends}
    return [(start, by_id[start.observation_id]) for start in starts]


def only(ctx: TraceContext) -> tuple[Observation, Observation]:
    """The trace's one generation (start, end)."""
    pairs = generations(ctx)
    assert len(pairs) == 1, pairs
    return pairs[0]
