"""Progress for long jobs: a rich bar on a terminal, a plain line every few seconds otherwise."""

from __future__ import annotations

import sys
import time
from typing import Any

import click

from ._common import format_cost

__all__ = ["Progress"]


class Progress:
    """A rich progress bar on a terminal; a plain line every few seconds otherwise."""

    def __init__(self, total: int, quiet: bool, label: str = "batch", noun: str = "job") -> None:
        self.total = total
        self.label = label
        self.noun = noun
        self.quiet = quiet
        self.done = self.failed = self.cached = 0
        self.cost = 0.0
        self.start = time.monotonic()
        self.last_line = self.start
        self.bar: Any = None
        self.task_id: Any = None

    def begin(self, job_id: str, already: int) -> None:
        self.done = already
        if self.quiet:
            return
        verb = "resuming" if already else "running"
        click.echo(f"{verb} {self.noun} {job_id}: {already} of {self.total} already done", err=True)
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(
                TextColumn(self.label),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}/s"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[cost]} {task.fields[failed]}"),
                console=Console(stderr=True),
                transient=False,
            )
            self.task_id = self.bar.add_task(
                self.label, total=self.total, completed=already, rate="0", cost="$0", failed=""
            )
            self.bar.start()

    def update(self, result: Any) -> None:
        if result.ok:
            self.done += 1
            self.cached += result.cached
        else:
            self.failed += 1
        if result.cost_usd and not result.cached:
            self.cost += result.cost_usd
        if self.quiet:
            return
        elapsed = max(time.monotonic() - self.start, 1e-6)
        rate = (self.done + self.failed) / elapsed
        if self.bar is not None:
            self.bar.update(
                self.task_id,
                completed=self.done + self.failed,
                rate=f"{rate:.1f}",
                cost=format_cost(self.cost),
                failed=f"{self.failed} failed" if self.failed else "",
            )
        elif time.monotonic() - self.last_line >= 5:
            self.last_line = time.monotonic()
            click.echo(
                f"{self.done + self.failed}/{self.total} items, {rate:.1f}/s,"
                f" {self.failed} failed, {format_cost(self.cost)}",
                err=True,
            )

    def end(self) -> None:
        if self.bar is not None:
            self.bar.stop()
