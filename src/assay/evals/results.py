"""Reading eval results back: summaries with intervals, flaky cases, comparisons, exports."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

from ..errors import UsageError
from ..run.jobs import JobStore
from ..store.logs import LogStore, log_store
from .stats import bootstrap_mean, mcnemar_exact, paired_bootstrap, wilson

__all__ = ["Group", "compare", "export", "flaky", "results", "summary"]


@dataclass
class Group:
    prompt: str
    provider: str
    n: int
    passed: int
    pass_low: float
    pass_high: float
    score: float
    score_low: float
    score_high: float
    cost_usd: float
    input_tokens: int
    output_tokens: int
    errors: int
    cached: int

    @property
    def pass_rate(self) -> float:
        return self.passed / self.n if self.n else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "pass_rate": self.pass_rate}


def _rows(store: LogStore, sql: str, args: tuple[Any, ...]) -> list[dict[str, Any]]:
    return [dict(r) for r in store._fetch(sql, args)]


def summary(job_id: str, db: Path | str | None = None) -> list[Group]:
    """Pass rate (Wilson 95%) and mean score (bootstrap 95%) per prompt x provider."""
    store = log_store(db)
    groups = []
    for g in _rows(
        store,
        "SELECT prompt_label, provider_label, COUNT(*) AS n, SUM(pass) AS passed,"
        " SUM(CASE WHEN cached THEN 0 ELSE COALESCE(cost_usd, 0) END) AS cost,"
        " SUM(COALESCE(input_tokens, 0)) AS inp, SUM(COALESCE(output_tokens, 0)) AS outp,"
        " SUM(error IS NOT NULL) AS errors, SUM(cached) AS cached"
        " FROM eval_results WHERE job_id = ? GROUP BY prompt_label, provider_label"
        " ORDER BY MIN(idx)",
        (job_id,),
    ):
        scores = [
            r[0]
            for r in store._fetch(
                "SELECT score FROM eval_results WHERE job_id = ? AND prompt_label = ?"
                " AND provider_label = ?",
                (job_id, g["prompt_label"], g["provider_label"]),
            )
        ]
        low, high = wilson(g["passed"], g["n"])
        s_low, s_high = bootstrap_mean(scores)
        groups.append(
            Group(
                g["prompt_label"],
                g["provider_label"],
                g["n"],
                g["passed"],
                low,
                high,
                sum(scores) / len(scores),
                s_low,
                s_high,
                g["cost"],
                g["inp"],
                g["outp"],
                g["errors"],
                g["cached"],
            )
        )
    return groups


def flaky(job_id: str, db: Path | str | None = None) -> list[dict[str, Any]]:
    """Cases that both passed and failed across ``--repeat`` runs."""
    return _rows(
        log_store(db),
        "SELECT test_idx, description, prompt_label, provider_label, SUM(pass) AS passed,"
        " COUNT(*) AS runs FROM eval_results WHERE job_id = ?"
        " GROUP BY test_idx, prompt_label, provider_label HAVING MIN(pass) != MAX(pass)"
        " ORDER BY test_idx",
        (job_id,),
    )


def results(
    job_id: str, db: Path | str | None = None, group: tuple[str, str] | None = None
) -> Iterator[dict[str, Any]]:
    """Every case (of one prompt x provider ``group``) with its output, in order, in pages."""
    store = log_store(db)
    last = -1
    where = " AND e.prompt_label = ? AND e.provider_label = ?" if group else ""
    while True:
        page = _rows(
            store,
            "SELECT e.*, r.response AS output, r.prompt AS rendered_prompt FROM eval_results e"
            " LEFT JOIN responses r ON r.id = e.response_id"
            f" WHERE e.job_id = ? AND e.idx > ?{where} ORDER BY e.idx LIMIT 1000",
            (job_id, last, *(group or ())),
        )
        if not page:
            return
        for row in page:
            row["vars"] = json.loads(row.pop("vars_json"))
            row["grades"] = json.loads(row.pop("grades_json"))
            row["pass"] = bool(row["pass"])
            row["cached"] = bool(row["cached"])
            yield row
        last = page[-1]["idx"]


def compare(run_a: str, run_b: str, db: Path | str | None = None) -> list[dict[str, Any]]:
    """Paired comparison per prompt x provider present in both runs.

    Cases pair by test (description and vars), prompt, provider and repeat.
    Pass/fail: McNemar's exact test. Scores: a sign-flip permutation test, with a
    bootstrap interval for the mean difference.
    """
    store = log_store(db)
    rows: dict[tuple[str, str], dict[tuple[str, int], list[Any]]] = {}
    for side, job in ((0, run_a), (1, run_b)):
        for r in store._fetch(
            "SELECT test_key, repeat, prompt_label, provider_label, pass, score"
            " FROM eval_results WHERE job_id = ?",
            (job,),
        ):
            group = rows.setdefault((r["prompt_label"], r["provider_label"]), {})
            pair = group.setdefault((r["test_key"], r["repeat"]), [None, None])
            pair[side] = (r["pass"], r["score"])
    out = []
    for (prompt, provider), pairs in rows.items():
        both = [(a, b) for a, b in pairs.values() if a is not None and b is not None]
        if not both:
            continue
        only_a = sum(1 for a, b in both if a[0] and not b[0])
        only_b = sum(1 for a, b in both if b[0] and not a[0])
        p_pass = mcnemar_exact(only_a, only_b)
        diff, low, high, p_score = paired_bootstrap(
            [a[1] for a, _ in both], [b[1] for _, b in both]
        )
        n = len(both)
        out.append(
            {
                "prompt": prompt,
                "provider": provider,
                "pairs": n,
                "pass_rate_a": sum(a[0] for a, _ in both) / n,
                "pass_rate_b": sum(b[0] for _, b in both) / n,
                "passed_only_in_a": only_a,
                "passed_only_in_b": only_b,
                "mcnemar_p": p_pass,
                "score_diff": diff,
                "score_diff_low": low,
                "score_diff_high": high,
                "score_p": p_score,
                "significant": p_pass < 0.05 or p_score < 0.05,
            }
        )
    if not out:
        raise UsageError(f"runs {run_a} and {run_b} have no cases in common")
    return out


def run_info(job_id: str, db: Path | str | None = None) -> dict[str, Any]:
    job = JobStore(log_store(db)).get(job_id, "eval")
    return {k: v for k, v in job.items() if k not in ("spec_json", "provider_batch_json")}


def export(job_id: str, path: Path, db: Path | str | None = None) -> int:
    """Write the run to ``.json``, ``.jsonl``, ``.csv`` or ``.xml`` (JUnit); return the cases."""
    suffix = path.suffix.lower()
    if suffix not in (".json", ".jsonl", ".csv", ".xml", ".html"):
        raise UsageError(f"--output must end in .json, .jsonl, .csv, .xml or .html: {path.name}")
    if suffix == ".html":
        from .report import write_html

        try:
            return write_html(job_id, path, db)
        except OSError as e:
            raise UsageError(f"cannot write {path}: {e.strerror or e}") from None
    n = 0
    try:
        with open(path, "w", encoding="utf-8", newline="") as f:
            if suffix == ".json":
                f.write('{"run": ' + json.dumps(run_info(job_id, db)) + ', "summary": ')
                f.write(json.dumps([g.to_dict() for g in summary(job_id, db)]))
                f.write(', "flaky": ' + json.dumps(flaky(job_id, db)) + ', "results": [')
                for row in results(job_id, db):
                    f.write((",\n" if n else "\n") + json.dumps(row, default=str))
                    n += 1
                f.write("\n]}\n")
            elif suffix == ".jsonl":
                for row in results(job_id, db):
                    f.write(json.dumps(row, default=str) + "\n")
                    n += 1
            elif suffix == ".csv":
                writer = csv.writer(f)
                columns = [
                    "idx",
                    "test_idx",
                    "description",
                    "prompt_label",
                    "provider_label",
                    "repeat",
                    "pass",
                    "score",
                    "reason",
                    "output",
                    "error",
                    "cached",
                    "cost_usd",
                    "latency_ms",
                    "vars",
                ]
                writer.writerow(columns)
                for row in results(job_id, db):
                    row["vars"] = json.dumps(row["vars"])
                    writer.writerow([row[c] for c in columns])
                    n += 1
            else:
                n = _junit(job_id, f, db)
    except OSError as e:
        raise UsageError(f"cannot write {path}: {e.strerror or e}") from None
    return n


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def _attr(text: str) -> str:
    """An XML attribute value: quoted, with the control characters XML forbids removed."""
    return quoteattr(_CONTROL.sub("", text))


def _junit(job_id: str, f: Any, db: Path | str | None) -> int:
    groups = summary(job_id, db)
    f.write('<?xml version="1.0" encoding="UTF-8"?>\n')
    total = sum(g.n for g in groups)
    failures = sum(g.n - g.passed for g in groups)
    f.write(
        f'<testsuites name={_attr("assay eval " + job_id)} tests="{total}" failures="{failures}">\n'
    )
    n = 0
    for g in groups:
        key = (g.prompt, g.provider)
        f.write(
            f'  <testsuite name={_attr(f"{key[0]} | {key[1]}")} tests="{g.n}"'
            f' failures="{g.n - g.passed}">\n'
        )
        for row in results(job_id, db, key):
            name = row["description"] or f"test {row['test_idx']}"
            if row["repeat"]:
                name += f" (repeat {row['repeat'] + 1})"
            seconds = (row["latency_ms"] or 0) / 1000
            f.write(
                f'    <testcase name={_attr(name)} classname={_attr(key[1])} time="{seconds:.3f}"'
            )
            if row["pass"]:
                f.write("/>\n")
            else:
                reason = row["reason"] or row["error"] or "failed"
                f.write(f">\n      <failure message={_attr(reason[:500])}/>\n    </testcase>\n")
            n += 1
        f.write("  </testsuite>\n")
    f.write("</testsuites>\n")
    return n
