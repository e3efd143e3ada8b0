"""The audit's terminal progress bar (rich): articles done / total, rate in articles/s, elapsed and ETA.

Caveats first: on a resumed audit the bar starts at the articles already done, and the rate and
ETA count only this run's articles.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("-- articles/s" if speed is None else f"{speed:.1f} articles/s")


@contextmanager
def audit_progress(console: Console) -> Iterator[tuple[Callable[[int, int], None], Callable[[int], None]]]:
    """Yields ``(start, advance)`` callbacks for :class:`service.audit.Progress`."""
    columns = (TextColumn("auditing"), BarColumn(), MofNCompleteColumn(), RateColumn(), TimeElapsedColumn(),
               TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, console=console) as progress:
        task: list[TaskID] = []

        def start(done: int, total: int) -> None:
            task.append(progress.add_task("auditing", total=total, completed=done))

        def advance(n: int) -> None:
            if task:
                progress.advance(task[0], n)

        yield start, advance
