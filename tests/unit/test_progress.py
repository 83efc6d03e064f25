"""render_progress formats and ProgressPrinter's TTY / non-TTY behaviour."""

from __future__ import annotations

import pytest

from pytest_fluxloop.plugin.progress import ProgressPrinter, format_duration, render_progress


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_seed_shape() -> None:
    assert render_progress(250, 500, 135.0) == "[▓▓▓▓▓░░░░░] 250/500 (50%) - ETA: 2m 15s"


def test_no_eta_before_first_completion() -> None:
    assert render_progress(0, 500, 12.0) == "[░░░░░░░░░░] 0/500 (0%) - ETA: --"


def test_failed_suffix_only_when_failures() -> None:
    assert render_progress(5, 10, 5.0, failed=0).endswith("ETA: 5s")
    assert render_progress(5, 10, 5.0, failed=3) == "[▓▓▓▓▓░░░░░] 5/10 (50%) - ETA: 5s - 3 failed"


def test_complete() -> None:
    assert render_progress(10, 10, 99.0) == "[▓▓▓▓▓▓▓▓▓▓] 10/10 (100%) - ETA: 0s"


def test_bar_and_percent_round_down() -> None:
    # 999/1000 is not done: no full bar, no 100%.
    assert render_progress(999, 1000, 10.0).startswith("[▓▓▓▓▓▓▓▓▓░] 999/1000 (99%)")
    assert render_progress(1, 3, 1.0).startswith("[▓▓▓░░░░░░░] 1/3 (33%)")


def test_width() -> None:
    assert render_progress(1, 4, 1.0, width=4).startswith("[▓░░░] 1/4 (25%)")


def test_zero_total_and_overshoot_are_safe() -> None:
    assert render_progress(0, 0, 1.0) == "[░░░░░░░░░░] 0/0 (0%) - ETA: --"
    assert render_progress(12, 10, 1.0).startswith("[▓▓▓▓▓▓▓▓▓▓] 12/10 (100%) - ETA: 0s")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (45, "45s"),
        (59.4, "59s"),
        (59.6, "1m 00s"),
        (135, "2m 15s"),
        (65, "1m 05s"),
        (3599, "59m 59s"),
        (3600, "1h 00m"),
        (3720, "1h 02m"),
        (26 * 3600, "26h 00m"),
        (-5, "0s"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_eta_uses_average_rate() -> None:
    # 2 done in 10s -> 5s each -> 8 left -> 40s.
    assert render_progress(2, 10, 10.0).endswith("ETA: 40s")
    # 1 done in 2h3m -> 1 left -> 2h03m.
    assert render_progress(1, 2, 2 * 3600 + 180).endswith("ETA: 2h 03m")


def test_non_tty_prints_only_at_ten_percent_steps() -> None:
    out: list[str] = []
    clock = FakeClock()
    printer = ProgressPrinter(total=100, write=out.append, is_tty=False, clock=clock)
    failed = 0
    for done in range(1, 101):
        clock.now += 1.0
        if done % 30 == 0:
            failed += 1
        printer.update(done, failed)
    printer.finish()
    assert len(out) == 10
    assert all(chunk.endswith("\n") and "\r" not in chunk for chunk in out)
    assert [chunk.split("] ")[1].split(" ")[0] for chunk in out] == [
        f"{n}/100" for n in range(10, 101, 10)
    ]
    assert out[-1] == "[▓▓▓▓▓▓▓▓▓▓] 100/100 (100%) - ETA: 0s - 3 failed\n"


def test_non_tty_small_total_prints_every_case_once() -> None:
    out: list[str] = []
    printer = ProgressPrinter(total=3, write=out.append, is_tty=False, clock=FakeClock())
    for done in (1, 2, 3):
        printer.update(done)
    printer.finish()
    assert [line.split(" ")[1] for line in out] == ["1/3", "2/3", "3/3"]


def test_non_tty_finish_prints_last_state_when_stopped_early() -> None:
    out: list[str] = []
    printer = ProgressPrinter(total=100, write=out.append, is_tty=False, clock=FakeClock())
    for done in range(1, 48):
        printer.update(done, failed=1)
    printer.finish()
    printer.finish()  # idempotent
    printer.update(60)  # ignored after finish
    assert [line.split(" ")[1] for line in out] == [f"{n}/100" for n in (10, 20, 30, 40, 47)]


def test_non_tty_jump_prints_one_line() -> None:
    out: list[str] = []
    printer = ProgressPrinter(total=10, write=out.append, is_tty=False, clock=FakeClock())
    printer.update(7)
    printer.finish()
    assert len(out) == 1
    assert out[0].startswith("[▓▓▓▓▓▓▓░░░] 7/10")


def test_tty_redraws_in_place_and_ends_line() -> None:
    out: list[str] = []
    clock = FakeClock()
    printer = ProgressPrinter(total=4, write=out.append, is_tty=True, clock=clock)
    for done in range(1, 5):
        clock.now += 1.0
        printer.update(done)
    printer.finish()
    assert out[-1] == "\n"
    redraws = out[:-1]
    assert len(redraws) == 4
    assert all(chunk.startswith("\r") and "\n" not in chunk for chunk in redraws)
    assert redraws[-1].strip() == "[▓▓▓▓▓▓▓▓▓▓] 4/4 (100%) - ETA: 0s"


def test_tty_pads_when_line_gets_shorter() -> None:
    out: list[str] = []
    clock = FakeClock()
    printer = ProgressPrinter(total=10, write=out.append, is_tty=True, clock=clock)
    clock.now += 1.0
    printer.update(1, failed=1)  # "... - 1 failed"
    clock.now += 1.0
    printer.update(2, failed=0)  # hypothetically shorter: must blank the leftovers
    assert len(out[1]) >= len(out[0])


def test_tty_throttles_fast_updates_but_always_draws_the_end() -> None:
    out: list[str] = []
    clock = FakeClock()
    printer = ProgressPrinter(total=1000, write=out.append, is_tty=True, clock=clock)
    for done in range(1, 1001):
        clock.now += 0.001  # 1000 cases in one second
        printer.update(done)
    printer.finish()
    assert len(out) < 50
    assert "1000/1000 (100%)" in out[-2]
    assert out[-1] == "\n"


def test_flush_called_after_each_write() -> None:
    out: list[str] = []
    flushes: list[int] = []
    printer = ProgressPrinter(
        total=2,
        write=out.append,
        is_tty=True,
        clock=FakeClock(),
        flush=lambda: flushes.append(len(out)),
    )
    printer.update(1)
    printer.update(2)
    printer.finish()
    assert flushes == list(range(1, len(out) + 1))


def test_nothing_planned_prints_nothing() -> None:
    out: list[str] = []
    printer = ProgressPrinter(total=0, write=out.append, is_tty=False, clock=FakeClock())
    printer.finish()
    assert out == []
