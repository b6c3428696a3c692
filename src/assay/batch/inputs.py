"""Reading a batch's inputs lazily: files in a directory or glob, CSV, JSONL, or stdin.

Each input is ``(index, fields, error)``. ``fields`` is what the template sees:
``{{path}} {{name}} {{stem}}`` for files, the columns of a CSV row, the keys
of a JSONL object (``{{value}}`` when the line is not an object), or
``{{input}}`` for a plain line. A row that cannot be read gets ``error`` and
the rest carry on, so one bad line never sinks a job of thousands.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..settings import user_dir

__all__ = ["Input", "count_inputs", "describe_source", "read_inputs", "spool_stdin"]

Input = tuple[int, dict[str, Any] | None, str | None]
FORMATS = ("files", "csv", "jsonl", "lines")


def spool_stdin() -> Path:
    """Copy stdin into ASSAY_HOME/batch-inputs/<sha256>, so a job from stdin can resume."""
    folder = user_dir() / "batch-inputs"
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    tmp = folder / f".stdin-{os.getpid()}"
    with open(tmp, "wb") as out:
        for chunk in iter(lambda: sys.stdin.buffer.read(1 << 16), b""):
            digest.update(chunk)
            out.write(chunk)
    final = folder / f"{digest.hexdigest()[:16]}.txt"
    if final.exists():  # the same input as before: keep the copy the job knows
        tmp.unlink()
    else:
        os.replace(tmp, final)
    return final


def describe_source(source: str, fmt: str | None) -> tuple[str, list[str] | str]:
    """The format of ``source`` and what to read: a sorted file list, or one data file."""
    path = Path(source)
    if fmt not in (None, *FORMATS):
        raise UsageError(f"unknown input format {fmt!r}: use one of {', '.join(FORMATS)}")
    if path.is_dir():
        files = sorted(
            str(p) for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")
        )
        return "files", files
    if any(c in source for c in "*?["):
        files = sorted(p for p in glob.glob(source, recursive=True) if os.path.isfile(p))
        if not files:
            raise UsageError(f"no files match {source!r}")
        return "files", files
    if not path.exists():
        raise UsageError(f"no such input file or directory: {source}")
    if fmt in (None, "files") and path.suffix.lower() == ".csv":
        fmt = "csv"
    elif fmt in (None, "files") and path.suffix.lower() in (".jsonl", ".ndjson"):
        fmt = "jsonl"
    elif fmt is None:
        fmt = _sniff(path)
    if fmt == "files":
        return "files", [str(path)]
    return fmt, str(path)


def _sniff(path: Path) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.strip():
                    return "jsonl" if line.lstrip().startswith("{") else "lines"
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror}") from None
    return "lines"


def read_inputs(fmt: str, what: list[str] | str) -> Iterator[Input]:
    if fmt == "files":
        assert isinstance(what, list)
        for i, p in enumerate(what):
            path = Path(p)
            yield i, {"path": p, "name": path.name, "stem": path.stem}, None
        return
    assert isinstance(what, str)
    try:
        f = open(what, encoding="utf-8", errors="replace", newline="")  # noqa: SIM115
    except OSError as e:
        raise UsageError(f"cannot read {what}: {e.strerror}") from None
    with f:
        if fmt == "csv":
            yield from _csv(f, what)
        elif fmt == "jsonl":
            yield from _jsonl(f, what)
        else:
            i = 0
            for line in f:
                text = line.rstrip("\r\n")
                if text.strip():
                    yield i, {"input": text}, None
                    i += 1


def _csv(f: Any, name: str) -> Iterator[Input]:
    try:
        reader = csv.reader(f, strict=True)
        header = next(reader, None)
    except (csv.Error, UnicodeDecodeError) as e:
        raise UsageError(f"{name}, line 1: {e}") from None
    if not header:
        return
    i = 0
    while True:
        line = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except (csv.Error, UnicodeDecodeError) as e:
            yield i, None, f"{name}, line {line}: {e}"
            i += 1
            continue
        if not row or not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            yield (
                i,
                None,
                (
                    f"{name}, line {reader.line_num}: {len(row)} fields where the header has"
                    f" {len(header)}"
                ),
            )
        else:
            yield i, dict(zip(header, row, strict=True)), None
        i += 1


def _jsonl(f: Any, name: str) -> Iterator[Input]:
    i = 0
    for n, line in enumerate(f, 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as e:
            yield i, None, f"{name}, line {n}: not JSON ({e.args[0].split(':')[0]})"
        else:
            yield i, value if isinstance(value, dict) else {"value": value}, None
        i += 1


def count_inputs(fmt: str, what: list[str] | str) -> int:
    if isinstance(what, list):
        return len(what)
    return sum(1 for _ in read_inputs(fmt, what))
