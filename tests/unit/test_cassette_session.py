"""A case's tape without the network (``pytest_fluxloop.cassettes.session``), the run's
figures (``.tally``) and the run side (``pytest_fluxloop.run.cassettes``): modes, misses and
their diffs, duplicates, retries, unused recordings, thread safety; the mode's resolution
and the check of every cassette before a run."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from support.cassette_helpers import (
    CASE_ID,
    EXPERIMENT,
    cassette,
    chat_body,
    chat_reply,
    interaction,
    tape,
)
from support.eval_helpers import make_record

from pytest_fluxloop.cassettes.errors import CassetteError, CassetteMiss
from pytest_fluxloop.cassettes.files import read_cassette, write_cassette
from pytest_fluxloop.cassettes.session import CallPlan, CaseTape, current_tape
from pytest_fluxloop.cassettes.tally import UNUSED_CASES_KEPT, CassetteTally
from pytest_fluxloop.plan.cases import Case
from pytest_fluxloop.records import CassetteUse
from pytest_fluxloop.redact import Redactor
from pytest_fluxloop.run.cassettes import ExperimentCassettes, ci_is_set, resolve_mode
from pytest_fluxloop.sdk.context import acting_as, current_turn

CHAT = ("openai", "/chat/completions")
REDACTOR = Redactor(include_env=False)


def ask(t: CaseTape, text: str, **extra: Any) -> CallPlan:
    return t.plan(*CHAT, chat_body(text, **extra))


def answer(plan: CallPlan, text: str = "live") -> None:
    plan.record(chat_reply(text))


@contextmanager
def at_turn(turn: int) -> Iterator[None]:
    """Make ``turn`` the current conversation turn for the block."""
    token = current_turn.set(turn)
    try:
        yield
    finally:
        current_turn.reset(token)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "support-bot" / f"{CASE_ID}.json"


# --------------------------------------------------------------------------- replay


def test_replay_hit_serves_the_recording(path: Path) -> None:
    recorded = interaction(chat_body("hi"), reply="hello!")
    t = tape("replay", path, cassette(recorded))
    plan = ask(t, "hi")
    assert plan.replay and plan.interaction is recorded
    assert (plan.call.role, plan.call.turn, plan.call.index) == ("agent", 0, 0)
    assert plan.call.key == recorded.key
    plan.record(chat_reply("ignored"))  # a replayed call records nothing
    assert t.result({}) is None
    assert t.replayed == 1 and t.misses == []


def test_replay_miss_shows_the_diff_against_the_same_position(path: Path) -> None:
    first = interaction(chat_body("first question"), index=0)
    second = interaction(chat_body("second question"), index=1)
    t = tape("replay", path, cassette(first, second))
    assert ask(t, "first question").replay
    with pytest.raises(CassetteMiss) as info:
        ask(t, "changed question")
    message = str(info.value)
    assert str(path) in message
    assert "agent call #2 of turn 0" in message and "(openai /chat/completions)" in message
    assert "--fluxloop-cassettes new" in message
    assert "Recorded request vs actual request:" in message
    assert "--- recorded (agent/0/1)" in message
    assert '-      "content": "second question"' in message
    assert '+      "content": "changed question"' in message
    assert "first question" not in message
    assert t.misses == [message]
    assert t.replayed == 1


def test_replay_miss_with_nothing_at_that_position(path: Path) -> None:
    t = tape("replay", path, cassette(interaction(chat_body("hi"))))
    with at_turn(3), pytest.raises(CassetteMiss) as info:
        ask(t, "hi")  # same request, another turn: another key, no recording at agent/3/0
    message = str(info.value)
    assert "agent call #1 of turn 3" in message
    assert "Nothing was recorded at that position" in message
    assert "(the cassette has 1 interactions for this case)" in message
    assert "Recorded request vs" not in message


def test_replay_without_a_cassette_misses_every_call(path: Path) -> None:
    t = tape("replay", path, None)
    with pytest.raises(CassetteMiss, match="the cassette has 0 interactions"):
        ask(t, "hi")
    assert len(t.misses) == 1 and t.result({}) is None


def test_role_and_turn_pick_the_recording(path: Path) -> None:
    agent = interaction(chat_body("same"), role="agent", turn=1, reply="agent answer")
    supervisor = interaction(chat_body("same"), role="supervisor", turn=1, reply="sup answer")
    t = tape("replay", path, cassette(agent, supervisor))
    with at_turn(1):
        with acting_as("supervisor"):
            plan = ask(t, "same")
        assert plan.interaction is supervisor and plan.call.role == "supervisor"
        assert ask(t, "same").interaction is agent
        with acting_as("judge"), pytest.raises(CassetteMiss, match="judge call #1 of turn 1"):
            ask(t, "same")


def test_index_counts_per_role_and_turn(path: Path) -> None:
    t = tape("rewrite", path)
    plans = [ask(t, "a")]
    with acting_as("supervisor"):
        plans.append(ask(t, "b"))
    plans.append(ask(t, "c"))
    with at_turn(2):
        plans.append(ask(t, "d"))
    assert [(p.call.role, p.call.turn, p.call.index) for p in plans] == [
        ("agent", 0, 0),
        ("supervisor", 0, 0),
        ("agent", 0, 1),
        ("agent", 2, 0),
    ]


# --------------------------------------------------------------------------- duplicates


def test_the_same_request_twice_needs_two_recordings_used_in_order(path: Path) -> None:
    one = interaction(chat_body("again"), index=0, reply="one")
    two = interaction(chat_body("again"), index=1, reply="two")
    assert one.key == two.key
    t = tape("replay", path, cassette(one, two))
    assert ask(t, "again").interaction is one
    assert ask(t, "again").interaction is two
    with pytest.raises(CassetteMiss) as info:
        ask(t, "again")
    # Nothing at position 2; the position's own recording would give the diff.
    assert "agent call #3 of turn 0" in str(info.value)
    assert "Nothing was recorded at that position" in str(info.value)
    assert t.replayed == 2 and len(t.misses) == 1


def test_a_used_up_recording_at_the_position_says_so(path: Path) -> None:
    x = interaction(chat_body("x"), index=0)
    y = interaction(chat_body("y"), index=1)
    t = tape("replay", path, cassette(x, y))
    assert ask(t, "y").interaction is y  # asked out of order: replays by key
    with pytest.raises(CassetteMiss) as info:
        ask(t, "y")  # position 1 holds "y", already used
    assert "(the requests are identical: it was already used by an earlier call)" in str(info.value)


# --------------------------------------------------------------------------- new / record / rewrite


def test_new_replays_what_matches_and_records_the_rest(path: Path) -> None:
    old = interaction(chat_body("known"), reply="from tape")
    loaded = cassette(old)
    t = tape("new", path, loaded)
    assert ask(t, "known").replay
    plan = ask(t, "unknown")
    assert not plan.replay and plan.call.index == 1
    answer(plan, "fresh")
    answer(plan, "twice")  # a plan records once
    result = t.result({"openai": "9"})
    assert result is not None
    assert result.interactions[0] is old
    assert len(result.interactions) == 2
    new = result.interactions[1]
    assert new.request == chat_body("unknown") and new.position == "agent/0/1"
    assert new.response == chat_reply("fresh")
    assert result.recorded_with == {"openai": "9"}
    assert t.misses == [] and t.replayed == 1


def test_new_with_nothing_new_writes_nothing(path: Path) -> None:
    t = tape("new", path, cassette(interaction(chat_body("known"))))
    ask(t, "known")
    assert t.result({}) is None


def test_new_without_a_cassette_records(path: Path) -> None:
    t = tape("new", path, None)
    answer(ask(t, "a"))
    result = t.result({})
    assert result is not None and [i.position for i in result.interactions] == ["agent/0/0"]


def test_record_with_a_cassette_replays_it(path: Path) -> None:
    t = tape("record", path, cassette(interaction(chat_body("known"))))
    assert t.mode == "replay"
    assert ask(t, "known").replay
    with pytest.raises(CassetteMiss):
        ask(t, "unknown")
    assert t.result({}) is None
    assert t.use(False).mode == "replay"


def test_record_without_a_cassette_records_every_call(path: Path) -> None:
    t = tape("record", path, None)
    assert t.mode == "record"
    first, second = ask(t, "a"), ask(t, "a")
    assert not first.replay and not second.replay
    answer(first, "1")
    answer(second, "2")
    result = t.result({})
    assert result is not None
    assert [i.position for i in result.interactions] == ["agent/0/0", "agent/0/1"]
    assert result.interactions[0].key == result.interactions[1].key
    assert result.case_id == CASE_ID and result.experiment == EXPERIMENT


def test_record_with_an_empty_cassette_records(path: Path) -> None:
    # A cassette left with no interactions (everything pruned) is no recording to replay.
    t = tape("record", path, cassette())
    assert t.mode == "record"
    plan = ask(t, "a")
    assert not plan.replay
    answer(plan)
    result = t.result({})
    assert result is not None and len(result.interactions) == 1


def test_rewrite_ignores_the_cassette(path: Path) -> None:
    old = interaction(chat_body("known"), reply="old")
    t = tape("rewrite", path, cassette(old))
    plan = ask(t, "known")
    assert not plan.replay
    answer(plan, "new")
    result = t.result({})
    assert result is not None and len(result.interactions) == 1
    assert result.interactions[0] is not old
    assert result.interactions[0].key == old.key
    assert result.interactions[0].response == chat_reply("new")
    assert t.unused() == []


def test_rewrite_that_records_nothing_writes_nothing(path: Path) -> None:
    t = tape("rewrite", path, cassette(interaction(chat_body("known"))))
    assert t.result({}) is None


# ------------------------------------------------------------- attempts, unused, figures


def test_begin_attempt_starts_afresh(path: Path) -> None:
    recorded = interaction(chat_body("hi"))
    t = tape("new", path, cassette(recorded))
    assert ask(t, "hi").replay
    answer(ask(t, "other"))
    t.fail("something")
    t.begin_attempt()
    assert t.replayed == 0 and t.misses == [] and t.failures == []
    assert t.result({}) is None  # the first attempt's recording is gone
    plan = ask(t, "hi")  # used again, at index 0 again
    assert plan.interaction is recorded and plan.call.index == 0


def test_begin_attempt_forgets_misses(path: Path) -> None:
    t = tape("replay", path, cassette(interaction(chat_body("hi"))))
    with pytest.raises(CassetteMiss):
        ask(t, "nope")
    t.begin_attempt()
    assert t.misses == []
    assert ask(t, "hi").replay


def test_unused_lists_what_was_never_asked(path: Path) -> None:
    a = interaction(chat_body("a"), index=0)
    b = interaction(chat_body("b"), index=1)
    c = interaction(chat_body("c"), role="supervisor", turn=1)
    t = tape("replay", path, cassette(a, b, c))
    ask(t, "a")
    assert t.unused() == [b, c]
    use = t.use(written=False)
    assert use == CassetteUse(
        mode="replay",
        replayed=1,
        recorded=0,
        missed=0,
        unused=["agent/0/1", "supervisor/1/0"],
        unused_keys=[b.key, c.key],
        written=False,
    )


def test_no_unused_after_a_miss_or_a_failure(path: Path) -> None:
    a, b = interaction(chat_body("a"), index=0), interaction(chat_body("b"), index=1)
    t = tape("replay", path, cassette(a, b))
    with pytest.raises(CassetteMiss):
        ask(t, "changed")
    assert t.unused() == []
    use = t.use(written=False)
    assert use.missed == 1 and use.unused == [] and use.unused_keys == []

    t2 = tape("replay", path, cassette(a, b))
    t2.fail("a recording was refused")
    assert t2.unused() == []


def test_unused_without_a_cassette_is_empty(path: Path) -> None:
    t = tape("record", path, None)
    answer(ask(t, "a"))
    assert t.unused() == []
    use = t.use(written=True)
    assert (use.mode, use.recorded, use.replayed, use.written) == ("record", 1, 0, True)


def test_use_in_new_mode_counts_both(path: Path) -> None:
    t = tape("new", path, cassette(interaction(chat_body("known"))))
    ask(t, "known")
    answer(ask(t, "new one"))
    use = t.use(written=True)
    assert (use.mode, use.replayed, use.recorded, use.missed, use.unused) == ("new", 1, 1, 0, [])


def test_current_tape_defaults_to_none() -> None:
    assert current_tape.get() is None


# --------------------------------------------------------------------------- threads


THREADS = 16


def _all_at_once(work: Any) -> list[Any]:
    barrier = threading.Barrier(THREADS)
    results: list[Any] = [None] * THREADS
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            barrier.wait(timeout=5)
            results[n] = work(n)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    return results


def test_concurrent_recording_counts_every_call_once(path: Path) -> None:
    t = tape("record", path, None)

    def work(n: int) -> int:
        plan = ask(t, f"question {n}")
        answer(plan, str(n))
        return plan.call.index

    indexes = _all_at_once(work)
    assert sorted(indexes) == list(range(THREADS))
    result = t.result({})
    assert result is not None and len(result.interactions) == THREADS
    assert sorted(i.index for i in result.interactions) == list(range(THREADS))
    assert t.use(False).recorded == THREADS


def test_concurrent_replay_hands_each_recording_out_once(path: Path) -> None:
    recordings = [interaction(chat_body("same"), index=n, reply=str(n)) for n in range(THREADS)]
    t = tape("replay", path, cassette(*recordings))

    def work(n: int) -> int:
        plan = ask(t, "same")
        assert plan.interaction is not None
        return id(plan.interaction)

    served = _all_at_once(work)
    assert sorted(served) == sorted(id(r) for r in recordings)
    assert t.replayed == THREADS and t.unused() == []
    with pytest.raises(CassetteMiss):
        ask(t, "same")


# --------------------------------------------------------------------------- the tally


def _record(case_id: str, **use: Any) -> Any:
    cassette_use = CassetteUse(**{"mode": "replay", **use}) if use else None
    return make_record(case_id=case_id, cassette=cassette_use)


def test_tally_sums_the_records() -> None:
    tally = CassetteTally("replay", "cassettes/support-bot")
    tally.add(_record("a", replayed=3, recorded=1, written=True))
    tally.add(_record("b", replayed=1, missed=2))
    tally.add(_record("c", replayed=2, unused=["agent/1/0", "judge/0/0"]))
    tally.add(_record("d"))  # no cassette use: nothing counted
    assert tally.block() == {
        "mode": "replay",
        "mode_reason": "set",
        "folder": "cassettes/support-bot",
        "replayed": 6,
        "recorded": 1,
        "missed": 2,
        "cases_with_misses": 1,
        "cassettes_written": 1,
        "unused_interactions": 2,
        "unused": {"c": ["agent/1/0", "judge/0/0"]},
    }
    lines = tally.lines()
    assert lines[0] == (
        "cassettes (replay, cassettes/support-bot): 6 calls replayed, 1 recorded, 2 missed; "
        "1 cassette file(s) written"
    )
    assert "1 case(s) made calls no recording matched" in lines[1]
    assert "--fluxloop-cassettes new" in lines[1]
    assert "2 recorded interaction(s) never used (c: agent/1/0, judge/0/0)" in lines[2]
    assert "fluxloop cassettes prune" in lines[2]
    json.dumps(tally.block())


def test_tally_quiet_when_all_is_well() -> None:
    tally = CassetteTally("replay", "f")
    tally.add(_record("a", replayed=2))
    assert tally.lines() == ["cassettes (replay, f): 2 calls replayed, 0 recorded, 0 missed"]


def test_tally_keeps_a_bounded_list_of_cases_but_counts_all() -> None:
    tally = CassetteTally("replay", "f")
    for n in range(UNUSED_CASES_KEPT + 3):
        tally.add(_record(f"case-{n:04d}", unused=["agent/0/0"]))
    block = tally.block()
    assert block["unused_interactions"] == UNUSED_CASES_KEPT + 3
    assert len(block["unused"]) == UNUSED_CASES_KEPT
    assert list(block["unused"]) == sorted(block["unused"])
    assert tally.lines()[-1].count("case-") == 5 and " ..." in tally.lines()[-1]


# --------------------------------------------------------------------------- the run's mode


@pytest.mark.parametrize("value", ["", "0", "false", "FALSE", " no ", "off"])
def test_ci_not_set(value: str) -> None:
    assert not ci_is_set({"CI": value})


@pytest.mark.parametrize("value", ["true", "1", "yes", "GitHub"])
def test_ci_set(value: str) -> None:
    assert ci_is_set({"CI": value})


def test_ci_unset() -> None:
    assert not ci_is_set({})


def test_ci_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    assert ci_is_set()
    monkeypatch.delenv("CI")
    assert not ci_is_set()


def test_resolve_mode(tmp_path: Path) -> None:
    folder = tmp_path / "cassettes" / "exp"
    assert resolve_mode(None, folder, {"CI": "true"}) == ("off", "default")  # no folder
    folder.mkdir(parents=True)
    (folder / "notes.txt").write_text("x", encoding="utf-8")
    assert resolve_mode(None, folder, {"CI": "true"}) == ("off", "default")  # no .json
    (folder / "case.json").write_text("{}", encoding="utf-8")
    mode, reason = resolve_mode(None, folder, {"CI": "true"})
    assert mode == "replay" and "CI" in reason
    assert resolve_mode(None, folder, {}) == ("off", "default")
    assert resolve_mode(None, folder, {"CI": "false"}) == ("off", "default")
    assert resolve_mode(None, folder, {"CI": "0"}) == ("off", "default")
    for explicit in ("record", "rewrite", "new", "off"):
        assert resolve_mode(explicit, folder, {"CI": "true"}) == (explicit, "set")


def test_create(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    assert ExperimentCassettes.create(None, tmp_path, "exp", REDACTOR) is None
    assert ExperimentCassettes.create("off", tmp_path, "exp", REDACTOR) is None
    made = ExperimentCassettes.create("record", tmp_path, "exp", REDACTOR)
    assert made is not None
    assert (made.mode, made.folder, made.reason) == ("record", tmp_path.resolve() / "exp", "set")
    assert made.path_for("case-1") == made.folder / "case-1.json"
    # In CI: replay once the experiment has cassettes, else off.
    monkeypatch.setenv("CI", "true")
    assert ExperimentCassettes.create(None, tmp_path, "exp", REDACTOR) is None
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "case-1.json").write_text("{}", encoding="utf-8")
    ci = ExperimentCassettes.create(None, tmp_path, "exp", REDACTOR)
    assert ci is not None and ci.mode == "replay"
    assert "CI is set" in ci.reason
    tally = CassetteTally(ci.mode, "f", ci.reason)
    assert tally.lines()[0].startswith("cassettes (replay: CI is set and the experiment has")
    assert tally.block()["mode_reason"] == ci.reason
    assert ExperimentCassettes.create("rewrite", tmp_path, "exp", REDACTOR) is not None


def test_a_case_id_cannot_lead_out_of_the_folder(tmp_path: Path) -> None:
    made = ExperimentCassettes.create("record", tmp_path, "exp", REDACTOR)
    assert made is not None
    with pytest.raises(Exception, match="case id"):
        made.path_for("../../elsewhere")


# --------------------------------------------------------------------------- check and finish


def _case(case_id: str) -> Case:
    return Case(case_id=case_id, input_index=0, input="hello")


def _experiment(tmp_path: Path, mode: str = "replay", **options: Any) -> ExperimentCassettes:
    made = ExperimentCassettes.create(mode, tmp_path, EXPERIMENT, REDACTOR, **options)
    assert made is not None
    return made


def _write(made: ExperimentCassettes, case_id: str, *interactions: Any) -> Path:
    path = made.path_for(case_id)
    write_cassette(path, cassette(*interactions, case_id=case_id), REDACTOR)
    return path


def test_check_lists_every_bad_cassette_at_once(tmp_path: Path) -> None:
    made = _experiment(tmp_path, expected_models={"supervisor": {"gpt-4o"}})
    good = _write(
        made,
        "good",
        interaction(chat_body("hi", model="agent-model"), case_id="good"),
        interaction(chat_body("next?", model="gpt-4o"), role="supervisor", case_id="good"),
    )
    corrupt = made.path_for("corrupt")
    corrupt.write_text('{"fluxloop_cassette": 1, "interactions": [', encoding="utf-8")
    versioned = made.path_for("versioned")
    versioned.write_text(json.dumps({"fluxloop_cassette": 7}), encoding="utf-8")
    other_model = _write(
        made,
        "other-model",
        interaction(chat_body("next?", model="gpt-3.5"), role="supervisor", case_id="other-model"),
    )
    cases = [_case(n) for n in ("good", "corrupt", "versioned", "other-model", "no-file")]
    with pytest.raises(CassetteError) as info:
        made.check(cases)
    message = str(info.value)
    assert message.startswith("3 cassette(s) cannot be used:\n")
    lines = message.splitlines()[1:]
    assert len(lines) == 3 and all(line.startswith("- cassette ") for line in lines)
    assert str(corrupt) in lines[0] and "not valid JSON" in lines[0]
    assert str(versioned) in lines[1] and "format version 7" in lines[1]
    assert str(other_model) in lines[2]
    assert "recorded with supervisor model gpt-3.5, this run uses gpt-4o" in lines[2]
    assert str(good) not in message


def test_check_one_bad_cassette_has_no_list(tmp_path: Path) -> None:
    made = _experiment(tmp_path)
    made.path_for("bad").parent.mkdir(parents=True, exist_ok=True)
    made.path_for("bad").write_text("nope", encoding="utf-8")
    with pytest.raises(CassetteError) as info:
        made.check([_case("bad")])
    assert str(info.value).startswith(f"cassette {made.path_for('bad')}: is not valid JSON")


def test_check_loads_good_cassettes_for_the_tapes(tmp_path: Path) -> None:
    made = _experiment(tmp_path, expected_models={"supervisor": {"gpt-4o"}, "judge": set()})
    _write(made, "good", interaction(chat_body("hi", model="any-agent-model"), case_id="good"))
    made.check([_case("good"), _case("none")])
    good = made.tape(_case("good"))
    assert good.loaded is not None and good.mode == "replay"
    assert good.path == made.path_for("good")
    assert ask(good, "hi", model="any-agent-model").replay
    assert made.tape(_case("none")).loaded is None


def test_rewrite_reads_no_cassette(tmp_path: Path) -> None:
    made = _experiment(tmp_path, "rewrite")
    made.path_for("bad").parent.mkdir(parents=True, exist_ok=True)
    made.path_for("bad").write_text("nope", encoding="utf-8")
    made.check([_case("bad")])
    assert made.tape(_case("bad")).loaded is None


def test_finish_writes_the_recording(tmp_path: Path) -> None:
    made = _experiment(tmp_path, "record")
    made.check([_case("c1")])
    t = made.tape(_case("c1"))
    with made.current(t):
        assert current_tape.get() is t
        answer(ask(t, "hi"), "hello")
    assert current_tape.get() is None
    record = make_record(case_id="c1")
    made.finish(t, record)
    assert record.status == "success" and record.error is None
    assert record.cassette is not None and record.cassette.written
    assert record.cassette.recorded == 1
    back = read_cassette(made.path_for("c1"))
    assert back.case_id == "c1" and back.experiment == EXPERIMENT
    assert back.interactions[0].response == chat_reply("hello")


def test_finish_marks_a_miss_as_an_infrastructure_error(tmp_path: Path) -> None:
    made = _experiment(tmp_path, "replay")
    t = made.tape(_case("c1"))
    with pytest.raises(CassetteMiss):
        ask(t, "hi")
    record = make_record(case_id="c1")
    made.finish(t, record)
    assert record.status == "error" and record.success is False
    assert record.error is not None
    assert (record.error.kind, record.error.type) == ("infrastructure", "CassetteMiss")
    assert "no recording in cassette" in record.error.message
    assert record.cassette is not None and record.cassette.missed == 1
    assert not made.path_for("c1").exists()


def test_finish_refuses_a_secret_and_fails_the_case(tmp_path: Path) -> None:
    made = _experiment(tmp_path, "record")
    t = made.tape(_case("c1"))
    secret = "sk-" + "Z" * 30
    answer(ask(t, f"use {secret}"))
    record = make_record(case_id="c1")
    made.finish(t, record)
    assert not made.path_for("c1").exists()
    assert record.cassette is not None and not record.cassette.written
    assert record.error is not None
    assert (record.error.kind, record.error.type) == ("infrastructure", "CassetteError")
    assert "not written" in record.error.message and secret not in record.error.message


def test_finish_leaves_a_crash_a_crash(tmp_path: Path) -> None:
    made = _experiment(tmp_path, "replay")
    t = made.tape(_case("c1"))
    with pytest.raises(CassetteMiss):
        ask(t, "hi")
    record = make_record(case_id="c1", status="crashed", success=False)
    made.finish(t, record)
    assert record.status == "crashed" and record.error is None
    assert record.cassette is not None and record.cassette.missed == 1
