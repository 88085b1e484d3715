"""Progress of long work (the builder, the trainer, the scrapers): k of n, an amount (bytes, audio seconds),
its rate and the ETA. On a terminal (stderr is a tty) a rich progress bar; otherwise one plain log line at a
bounded rate (each further 10 % of the total, or 30 s since the last line, and a last line at the end);
never both, and nothing when disabled (`--no-progress`).

    with Progress("download", total=len(items), unit="chapters", amount="bytes") as bar:
        bar.advance(1, amount=nbytes)

rich is imported only when a bar is drawn (Beam workers import this module without needing it).
"""
from __future__ import annotations

import logging
import math
import sys
import time
from typing import Callable, Optional

log = logging.getLogger(__name__)

AMOUNTS = ("bytes", "audio")  # how the amount is shown: 12.3 MB, 1.25 h of audio


def duration_text(seconds: Optional[float]) -> str:
    """0:01:05 style; '?' when unknown."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "?"
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def amount_text(value: float, kind: str) -> str:
    if kind == "bytes":
        return f"{value / 1e6:.1f} MB"
    return f"{value / 3600:.2f} h of audio"


def rate_text(per_second: float, kind: str) -> str:
    if kind == "bytes":
        return f"{per_second / 1e6:.2f} MB/s"
    return f"{per_second:.1f} audio s/s"


def eta_seconds(done: int, total: Optional[int], elapsed: float) -> Optional[float]:
    """Time left at the rate so far (items per second); None when unknown (nothing done yet, no total)."""
    if not total or done <= 0 or elapsed <= 0:
        return None
    return max(0.0, (total - done) * elapsed / done)


def status_line(desc: str, done: int, total: Optional[int], unit: str, elapsed: float,
                amount: Optional[float] = None, kind: Optional[str] = None) -> str:
    """`build: 12/40 recordings (30%), 0.52 h of audio, 310.2 audio s/s, 0:00:41 elapsed, ETA 0:01:10`."""
    parts = [f"{desc}: {done}/{total} {unit} ({100 * done / total:.0f}%)" if total else f"{desc}: {done} {unit}"]
    if kind is not None and amount is not None:
        parts.append(amount_text(amount, kind))
        parts.append(rate_text(amount / elapsed if elapsed > 0 else 0.0, kind))
    parts.append(f"{duration_text(elapsed)} elapsed")
    parts.append(f"ETA {duration_text(eta_seconds(done, total, elapsed))}")
    return ", ".join(parts)


class Progress:
    """k of n (+ an amount) shown as a rich bar on a terminal, else as bounded plain lines (see the module doc).

    `interactive` defaults to stderr being a tty; `emit` receives the plain lines (default: this module's
    logger at INFO). `every_fraction` and `every_seconds` bound the plain lines: at most 1/every_fraction lines
    for the fractions, one per `every_seconds` besides, and one at the end."""

    def __init__(self, desc: str, total: Optional[int] = None, unit: str = "items", amount: Optional[str] = None,
                 enabled: bool = True, interactive: Optional[bool] = None,
                 emit: Optional[Callable[[str], None]] = None, every_fraction: float = 0.1,
                 every_seconds: float = 30.0, clock: Callable[[], float] = time.monotonic, stream=None):
        if amount is not None and amount not in AMOUNTS:
            raise ValueError(f"amount must be one of {AMOUNTS}, got {amount!r}")
        self.desc, self.total, self.unit, self.kind = desc, total, unit, amount
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        if interactive is None:
            isatty = getattr(self.stream, "isatty", None)
            interactive = bool(isatty and isatty())
        self.interactive = interactive
        self.emit = emit or (lambda line: log.info("%s", line))
        self.every_fraction, self.every_seconds, self.clock = every_fraction, every_seconds, clock
        self.done, self.amount = 0, 0.0
        self.note = ""  # appended to the plain lines and shown beside the bar (e.g. the last epoch's loss)
        self.start = clock()
        self._last_line_at = self.start
        self._last_bucket = 0
        self._last_line_state = None
        self._bar = self._task = None

    # -- the two displays
    def __enter__(self) -> "Progress":
        if self.enabled and self.interactive:
            from rich.console import Console
            from rich.table import Column
            from rich.progress import BarColumn, Progress as RichProgress, TextColumn

            columns = [TextColumn("{task.description}", table_column=Column(no_wrap=True)),
                       BarColumn(bar_width=20, table_column=Column(min_width=20)),
                       TextColumn("{task.fields[counts]}", table_column=Column(no_wrap=True)),
                       TextColumn("{task.fields[amount]}", table_column=Column(no_wrap=True, overflow="ellipsis"))]
            self._bar = RichProgress(*columns, console=Console(file=self.stream), redirect_stdout=False,
                                     redirect_stderr=False)
            self._bar.start()
            self._task = self._bar.add_task(self.desc, total=self.total, amount="", counts="")
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._refresh_bar()
            self._bar.stop()
            self._bar = None
        elif not self.interactive and (self.done or self.amount) and self._last_line_state != (self.done, self.amount):
            self._line()  # the last state, unless said already (and nothing when there was nothing to do)
        self.enabled = False  # closed: later updates draw nothing

    # -- updates
    def advance(self, n: int = 1, amount: float = 0.0) -> None:
        self.update(self.done + n, self.amount + amount)

    def add_amount(self, amount: float) -> None:
        self.update(self.done, self.amount + amount)

    def update(self, done: int, amount: Optional[float] = None, total: Optional[int] = None) -> None:
        """Set the counts (absolute, e.g. polled from a job's counters); `total` when it becomes known."""
        if total is not None:
            self.total = total
        self.done = done
        if amount is not None:
            self.amount = amount
        if not self.enabled:
            return
        if self._bar is not None:
            self._refresh_bar()
        elif not self.interactive:
            self._maybe_line()

    def line(self) -> str:
        text = status_line(self.desc, self.done, self.total, self.unit, self.clock() - self.start,
                           self.amount if self.kind else None, self.kind)
        return f"{text} | {self.note}" if self.note else text

    def _refresh_bar(self) -> None:
        elapsed = self.clock() - self.start
        counts = f"{self.done}/{self.total}" if self.total else f"{self.done}"
        eta = duration_text(eta_seconds(self.done, self.total, elapsed))
        counts += f" {self.unit} {duration_text(elapsed)} ETA {eta}"
        extra = ""
        if self.kind:
            extra = f"{amount_text(self.amount, self.kind)}, {rate_text(self.amount / max(elapsed, 1e-9), self.kind)}"
        extra = f"{extra} {self.note}".strip()
        self._bar.update(self._task, completed=self.done, total=self.total, counts=counts, amount=extra)

    def _bucket(self) -> int:
        if not self.total or self.every_fraction <= 0:
            return 0
        return int(min(self.done, self.total) / self.total / self.every_fraction + 1e-9)

    def _maybe_line(self) -> None:
        now, bucket = self.clock(), self._bucket()
        if bucket > self._last_bucket or now - self._last_line_at >= self.every_seconds:
            self._last_bucket = max(bucket, self._last_bucket)
            self._line()

    def _line(self) -> None:
        self._last_line_at = self.clock()
        self._last_line_state = (self.done, self.amount)
        self.emit(self.line())
