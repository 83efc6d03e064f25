"""Progress bar for experiment runs: ``[▓▓▓▓▓░░░░░] 250/500 (50%) - ETA: 2m 15s``.

``render_progress`` is a pure formatter; ``ProgressPrinter`` decides *when* to print: on a
terminal it redraws one line in place, elsewhere (CI logs, pipes) it prints one line per
10% step so logs stay short. Nothing here imports pytest; the plugin feeds it from
``pytest_runtest_logreport``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

FILLED = "▓"
EMPTY = "░"

__all__ = ["ProgressPrinter", "format_duration", "render_progress"]


def format_duration(seconds: float) -> str:
    """Format a duration for humans: ``45s``, ``2m 15s``, ``1h 02m``.

    Rounded to whole seconds first so ``59.6`` becomes ``1m 00s`` rather than ``60s``.
    """
    total = max(0, round(seconds))
    if total < 60:
        return f"{total}s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def render_progress(
    done: int, total: int, elapsed_s: float, failed: int = 0, width: int = 10
) -> str:
    """Render one progress line, e.g. ``[▓▓▓▓▓░░░░░] 250/500 (50%) - ETA: 2m 15s``.

    The ETA extrapolates the average time per finished case so far; before the first case
    finishes there is no rate yet, so it reads ``ETA: --``. ``failed > 0`` appends
    ``- N failed``. The bar and percentage round down, so 100% means every case is done.
    """
    fraction = min(1.0, done / total) if total > 0 and done > 0 else 0.0
    filled = math.floor(fraction * width)
    bar = FILLED * filled + EMPTY * (width - filled)
    percent = math.floor(fraction * 100)
    if done > 0 and total > 0:
        remaining = max(0, total - done) * (max(0.0, elapsed_s) / done)
        eta = format_duration(remaining)
    else:
        eta = "--"
    line = f"[{bar}] {done}/{total} ({percent}%) - ETA: {eta}"
    if failed > 0:
        line += f" - {failed} failed"
    return line


class ProgressPrinter:
    """Print experiment progress through ``write``.

    On a TTY each ``update`` redraws the same line with ``\\r`` (throttled to
    ``min_interval`` seconds, except the final state, so thousands of fast cases do not
    flood the terminal). Without a TTY a new line is printed only when progress crosses
    a 10% step, plus the final state from ``finish()``.
    """

    def __init__(
        self,
        total: int,
        write: Callable[[str], None],
        is_tty: bool,
        clock: Callable[[], float] = time.monotonic,
        *,
        flush: Callable[[], None] | None = None,
        min_interval: float = 0.1,
        width: int = 10,
    ) -> None:
        self.total = total
        self._write = write
        self._flush = flush
        self._is_tty = is_tty
        self._clock = clock
        self._min_interval = min_interval
        self._width = width
        self._start = clock()
        self._done = 0
        self._failed = 0
        self._last_step = 0  # last 10% step printed (non-TTY)
        self._last_printed: tuple[int, int] | None = None  # (done, failed) last written
        self._last_draw = -math.inf  # clock() of the last TTY redraw
        self._line_len = 0  # length of the line on screen, to blank leftovers
        self._finished = False

    def _line(self) -> str:
        return render_progress(
            self._done, self.total, self._clock() - self._start, self._failed, self._width
        )

    def _emit(self, text: str) -> None:
        self._write(text)
        if self._flush is not None:
            self._flush()

    def _redraw(self) -> None:
        line = self._line()
        # Pad with spaces: a shorter line (e.g. ETA "2m 05s" -> "9s") must erase the old one.
        padding = " " * max(0, self._line_len - len(line))
        self._emit("\r" + line + padding)
        self._line_len = len(line)
        self._last_draw = self._clock()
        self._last_printed = (self._done, self._failed)

    def _print_line(self) -> None:
        self._emit(self._line() + "\n")
        self._last_printed = (self._done, self._failed)

    def update(self, done: int, failed: int = 0) -> None:
        """Record that ``done`` cases have finished, ``failed`` of them unsuccessfully."""
        if self._finished:
            return
        self._done, self._failed = done, failed
        if self._is_tty:
            complete = self.total > 0 and done >= self.total
            if complete or self._clock() - self._last_draw >= self._min_interval:
                self._redraw()
            return
        if self.total <= 0:
            return
        step = min(10, math.floor(done * 10 / self.total))
        if step > self._last_step:
            self._last_step = step
            self._print_line()

    def finish(self) -> None:
        """Show the final state (if not already shown) and end the line; idempotent."""
        if self._finished:
            return
        self._finished = True
        if self.total <= 0 and self._done == 0:
            return  # nothing was planned: an empty bar would only be noise
        if self._is_tty:
            if self._last_printed != (self._done, self._failed) or self._line_len == 0:
                self._redraw()
            self._emit("\n")
        elif self._last_printed != (self._done, self._failed):
            self._print_line()
