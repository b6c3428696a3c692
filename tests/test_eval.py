"""`assay eval`: suites, every assertion type, statistics, reports, resume, comparisons."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest

from assay import evals
from assay.evals.asserts import parse_verdict
from assay.evals.stats import bootstrap_mean, mcnemar_exact, paired_bootstrap, wilson

from .conftest import declare
from .test_serve import Served, start, stop

ASSAY = [sys.executable, "-m", "assay"]
ROOT = Path(__file__).resolve().parent.parent


def assay(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ASSAY, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    served = start(tmp_path_factory.mktemp("eval-server"))
    yield served
    stop(served)


def grades(run_id: str) -> dict[str, list[dict[str, Any]]]:
    """Each test's grades, by description."""
    return {r["description"]: r["grades"] for r in evals.results(run_id)}


# Every assertion type, passing and failing, on echo (which answers with its prompt).
CASES: list[tuple[str, str, dict[str, Any], bool]] = [
    ("equals", "hello", {"type": "equals", "value": "hello"}, True),
    ("equals", "hello", {"type": "equals", "value": "goodbye"}, False),
    ("equals-json", '{"a": 1}', {"type": "equals", "value": {"a": 1}}, True),
    ("contains", "the cat sat", {"type": "contains", "value": "cat"}, True),
    ("contains", "the cat sat", {"type": "contains", "value": "dog"}, False),
    ("icontains", "The CAT sat", {"type": "icontains", "value": "cat"}, True),
    ("icontains", "The CAT sat", {"type": "icontains", "value": "dog"}, False),
    ("contains-any", "red fish", {"type": "contains-any", "value": ["blue", "red"]}, True),
    ("contains-any", "red fish", {"type": "contains-any", "value": "blue, green"}, False),
    ("contains-all", "red fish blue", {"type": "contains-all", "value": ["red", "blue"]}, True),
    ("contains-all", "red fish", {"type": "contains-all", "value": ["red", "blue"]}, False),
    ("regex", "order 1234", {"type": "regex", "value": r"\d{4}"}, True),
    ("regex", "order abc", {"type": "regex", "value": r"\d{4}"}, False),
    ("starts-with", "Dear sir", {"type": "starts-with", "value": "Dear"}, True),
    ("starts-with", "Hi sir", {"type": "starts-with", "value": "Dear"}, False),
    ("levenshtein", "kitten", {"type": "levenshtein", "value": "sitting", "threshold": 3}, True),
    ("levenshtein", "kitten", {"type": "levenshtein", "value": "sitting", "threshold": 2}, False),
    ("is-json", '{"a": 1}', {"type": "is-json"}, True),
    ("is-json", "not json", {"type": "is-json"}, False),
    (
        "is-json",
        '{"a": "x"}',
        {"type": "is-json", "value": {"properties": {"a": {"type": "number"}}}},
        False,
    ),
    (
        "contains-json",
        'Here: {"a": 1} done',
        {"type": "contains-json", "value": {"required": ["a"]}},
        True,
    ),
    ("contains-json", "no json here", {"type": "contains-json"}, False),
    ("python", "hello world", {"type": "python", "value": "'world' in output"}, True),
    ("python", "hello world", {"type": "python", "value": "len(output) > 100"}, False),
    (
        "python",
        "abc",
        {
            "type": "python",
            "value": "n = len(output)\nreturn {'pass': n == 3, 'score': 0.7, 'reason': 'three'}",
        },
        True,
    ),
    ("python", "abc", {"type": "python", "value": "file://check.py"}, True),
    ("python", "abcd", {"type": "python", "value": "file://check.py"}, False),
    ("python", "loop", {"type": "python", "value": "while True:\n    pass"}, False),
    ("not-contains", "the cat", {"type": "not-contains", "value": "dog"}, True),
    ("not-contains", "the cat", {"type": "not-contains", "value": "cat"}, False),
    (
        "llm-rubric",
        "a polite reply",
        {"type": "llm-rubric", "value": "is polite", "provider": "judge-yes"},
        True,
    ),
    (
        "llm-rubric",
        "a rude reply",
        {"type": "llm-rubric", "value": "is polite", "provider": "judge-no"},
        False,
    ),
    (
        "similar",
        "The cat sat on the mat",
        {"type": "similar", "value": "The cat sat on the mat"},
        True,
    ),
    (
        "similar",
        "The cat sat on the mat",
        {"type": "similar", "threshold": 0.999, "value": "Quarterly revenue grew by nine percent"},
        False,
    ),
    ("cost", "cheap", {"type": "cost", "threshold": 100}, True),
    ("cost", "dear", {"type": "cost", "threshold": 0.000001}, False),
    ("latency", "fast", {"type": "latency", "threshold": 60000}, True),
    ("latency", "slow", {"type": "latency", "threshold": 0}, False),
]


def test_every_assertion_type_passes_and_fails(
    assay_home: Path, tmp_path: Path, upstream: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASSAY_PYTHON_TIMEOUT", "2")
    yes = json.dumps({"reason": "fine", "pass": True, "score": 0.9})
    declare(
        assay_home,
        f"- {{alias: judge-yes, base_url: '{upstream.url}/v1', model: echo,"
        f" extra_body: {{reply: {json.dumps('Verdict: ' + yes)}}}}}\n"
        f"- {{alias: judge-no, base_url: '{upstream.url}/v1', model: echo,"
        f" extra_body: {{reply: 'FAIL. It is rude.'}}}}\n",
    )
    (assay_home / "prices.yaml").write_text("echo: {input: 1, output: 1}\n")
    (tmp_path / "check.py").write_text(
        "def get_assert(output, context):\n"
        "    return {'pass': len(output) == 3, 'score': 1.0, 'reason': context['vars']['text']}\n"
    )
    tests = [
        {
            "description": f"{i} {kind} {'pass' if ok else 'fail'}",
            "vars": {"text": text},
            "assert": [a],
        }
        for i, (kind, text, a, ok) in enumerate(CASES)
    ]
    suite = evals.suite_from_dict(
        {"prompts": ["{{text}}"], "providers": ["echo"], "tests": tests}, base=tmp_path
    )
    run_id, groups = evals.run(suite, concurrency=4)
    graded = grades(run_id)
    wrong = []
    for i, (kind, _, _, ok) in enumerate(CASES):
        grade = graded[f"{i} {kind} {'pass' if ok else 'fail'}"][0]
        if grade["pass"] is not ok:
            wrong.append((i, kind, grade))
    assert not wrong
    by = {d: g[0] for d, g in graded.items()}
    assert "timed out after 2s" in by[f"{27} python fail"]["reason"]
    assert by["24 python pass"]["score"] == pytest.approx(0.7)
    assert by["30 llm-rubric pass"]["score"] == pytest.approx(0.9)
    assert by["31 llm-rubric fail"]["reason"].startswith("FAIL")
    assert groups[0].n == len(CASES) and groups[0].passed == sum(ok for *_, ok in CASES)


def test_verdicts_are_read_robustly() -> None:
    assert parse_verdict('```json\n{"pass": true, "score": 1, "reason": "ok"}\n```') == (
        True,
        1.0,
        "ok",
    )
    assert parse_verdict('{"pass": "false", "reason": "no"}') == (False, 0.0, "no")
    assert parse_verdict('{"score": 0.8}')[:2] == (True, 0.8)
    assert parse_verdict("Yes, the answer meets the rubric.")[0] is True
    assert parse_verdict("It fails: the tone is rude")[0] is False
    with pytest.raises(ValueError, match="no verdict"):
        parse_verdict("I cannot say.")


def test_statistics_match_textbook_values() -> None:
    # Wilson 95% interval for 8 of 10 (Newcombe 1998, and any statistics table).
    low, high = wilson(8, 10)
    assert (round(low, 4), round(high, 4)) == (0.4902, 0.9433)
    low, high = wilson(0, 10)
    assert (round(low, 4), round(high, 4)) == (0.0, 0.2775)
    # McNemar exact: two-sided binomial p on the discordant pairs.
    assert mcnemar_exact(2, 8) == pytest.approx(0.109375)  # 2 * (1 + 10 + 45) / 1024
    assert mcnemar_exact(1, 9) == pytest.approx(0.021484375)
    assert mcnemar_exact(5, 5) == 1.0 and mcnemar_exact(0, 0) == 1.0
    low, high = bootstrap_mean([0.0, 1.0] * 50)
    assert low < 0.5 < high and high - low < 0.3
    diff, low, high, p = paired_bootstrap([0.0] * 30, [1.0] * 20 + [0.0] * 10)
    assert diff == pytest.approx(2 / 3) and low > 0.4 and p < 0.01


def test_compare_says_plainly_whether_a_difference_is_significant(
    assay_home: Path, tmp_path: Path
) -> None:
    tests = [
        {
            "description": f"t{i}",
            "vars": {"x": str(i)},
            "assert": [{"type": "contains", "value": "yes"}],
        }
        for i in range(20)
    ]

    def suite(template: str) -> evals.Suite:
        return evals.suite_from_dict(
            {"prompts": [{"label": "p", "raw": template}], "providers": ["echo"], "tests": tests}
        )

    run_a, _ = evals.run(suite("no {{x}}"))
    run_b, _ = evals.run(suite("yes {{x}}"))
    run_c, _ = evals.run(suite("no {{x}} again"))
    better = evals.compare(run_a, run_b)[0]
    assert better["passed_only_in_b"] == 20 and better["mcnemar_p"] < 1e-5
    assert better["significant"] is True
    same = evals.compare(run_a, run_c)[0]
    assert same["mcnemar_p"] == 1.0 and same["significant"] is False
    shown = assay("eval", "compare", run_a, run_b)
    assert shown.returncode == 0, shown.stderr
    assert "SIGNIFICANT at 0.05" in shown.stdout and "pass 0.0% -> 100.0%" in shown.stdout


HOSTILE = '<script>alert(1)</script>" onmouseover="alert(2)" \'><img src=x onerror=alert(3)>'


def test_the_html_report_escapes_hostile_output(assay_home: Path, tmp_path: Path) -> None:
    suite = evals.suite_from_dict(
        {
            "prompts": ["{{text}}"],
            "providers": ["echo"],
            "tests": [
                {
                    "description": HOSTILE,
                    "vars": {"text": HOSTILE},
                    "assert": [{"type": "contains", "value": "<script>"}],
                }
            ],
        }
    )
    run_id, _ = evals.run(suite)
    out = tmp_path / "report.html"
    evals.export(run_id, out)
    page = out.read_text()
    assert "<script>alert" not in page and "<img" not in page
    assert 'onmouseover="alert' not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&quot; onmouseover=&quot;alert(2)" in page
    assert page.count("<script>") == 1  # the report's own filter script, and nothing else


def test_outputs_in_every_format_and_the_ci_threshold(assay_home: Path, tmp_path: Path) -> None:
    (tmp_path / "suite.yaml").write_text(
        "prompts: ['{{q}}']\nproviders: [echo]\ntests:\n"
        "  - {vars: {q: yes}, assert: [{type: equals, value: 'yes'}]}\n"
        "  - {vars: {q: no}, assert: [{type: equals, value: 'yes'}]}\n"
    )
    outs = [tmp_path / f"r.{s}" for s in ("json", "jsonl", "csv", "xml", "html")]
    args = [str(tmp_path / "suite.yaml")]
    for o in outs:
        args += ["--output", str(o)]
    result = assay("eval", *args, "--threshold", "0.5")
    assert result.returncode == 0, result.stderr
    assert "1/2 passed (50.0%)" in result.stdout
    data = json.loads(outs[0].read_text())
    assert [r["pass"] for r in data["results"]] == [True, False]
    assert data["summary"][0]["pass_low"] == pytest.approx(wilson(1, 2)[0])
    assert len(outs[1].read_text().splitlines()) == 2
    assert outs[2].read_text().splitlines()[0].startswith("idx,test_idx,description")
    junit = ElementTree.parse(outs[3]).getroot()
    assert junit.get("tests") == "2" and junit.get("failures") == "1"
    assert len(junit.findall(".//failure")) == 1
    failing = assay("eval", str(tmp_path / "suite.yaml"), "--threshold", "0.9")
    assert failing.returncode == 1
    assert "below the threshold 90.0%" in failing.stderr


def test_repeat_finds_flaky_cases(assay_home: Path, tmp_path: Path) -> None:
    # A python assertion that passes on alternate calls: flaky by construction.
    (tmp_path / "flip.py").write_text(
        "import os\nstate = {'n': 0}\n"
        "def get_assert(output, context):\n"
        "    state['n'] += 1\n    return state['n'] % 2 == 0\n"
    )
    suite = evals.suite_from_dict(
        {
            "prompts": ["{{x}}"],
            "providers": ["echo"],
            "tests": [
                {
                    "description": "coin",
                    "vars": {"x": "a"},
                    "assert": [{"type": "python", "value": "file://flip.py"}],
                }
            ],
        },
        base=tmp_path,
    )
    run_id, groups = evals.run(suite, repeat=4, concurrency=1)
    assert groups[0].n == 4 and groups[0].passed == 2
    flaky = evals.flaky(run_id)
    assert [(f["description"], f["passed"], f["runs"]) for f in flaky] == [("coin", 2, 4)]


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (
            {"s.yaml": "prompts: [a]\nproviders: [echo]\ntests:\n  - vars: {x: 1\n"},
            r"s\.yaml:5: invalid YAML",
        ),
        (
            {"s.yaml": "prompts: [a]\nproviders: [echo]\nsharing: true\n"},
            r"s\.yaml:3: unsupported field 'sharing' in the suite",
        ),
        (
            {
                "s.yaml": "prompts: [a]\nproviders: [echo]\ntests:\n  - vars: {}\n    assert:\n"
                "      - type: javascript\n        value: 1\n"
            },
            r"s\.yaml:6: unsupported assertion type 'javascript'",
        ),
        (
            {"s.yaml": "prompts: [a]\nproviders: [echo]\ntests:\n  - vars: {}\n    transform: x\n"},
            r"s\.yaml:5: unsupported field 'transform' in a test",
        ),
        (
            {
                "s.yaml": "prompts: [a]\nproviders: [echo]\ntests: file://t.csv\n",
                "t.csv": 'q,__expected\nok,fine\n"broken,x\n',
            },
            r"t\.csv:\d: malformed CSV|t\.csv:\d: 1 fields where",
        ),
        (
            {
                "s.yaml": "prompts: [a]\nproviders: [echo]\ntests: file://t.csv\n",
                "t.csv": "q,__expected\nok,fine\nok,fine,extra\n",
            },
            r"t\.csv:3: 3 fields where the header has 2",
        ),
        (
            {"s.yaml": "prompts: [a]\nproviders: [{id: echo, config: {frobnicate: 1}}]\n"},
            r"s\.yaml:\d: unsupported field 'frobnicate' in a provider's config",
        ),
        ({"s.yaml": "prompts: [a]\nproviders: [nosuchmodel]\n"}, "unknown model"),
    ],
)
def test_bad_suites_name_the_file_and_line(
    assay_home: Path, tmp_path: Path, files: dict[str, str], message: str
) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    result = assay("eval", str(tmp_path / "s.yaml"))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    import re

    assert re.search(message, result.stderr), result.stderr


def test_resume_after_kill_9(assay_home: Path, tmp_path: Path, upstream: Served) -> None:
    declare(
        assay_home,
        f"- {{alias: slow, base_url: '{upstream.url}/v1', model: echo,"
        " extra_body: {delay: 0.03}}\n",
    )
    rows = "".join(
        json.dumps(
            {"vars": {"q": f"kill-eval {i}"}, "assert": [{"type": "contains", "value": "kill"}]}
        )
        + "\n"
        for i in range(200)
    )
    (tmp_path / "tests.jsonl").write_text(rows)
    (tmp_path / "s.yaml").write_text(
        "prompts: ['{{q}}']\nproviders: [slow]\ntests: file://tests.jsonl\n"
    )
    proc = subprocess.Popen(
        [*ASSAY, "eval", str(tmp_path / "s.yaml"), "-j", "4", "-q"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    done = 0
    deadline = time.monotonic() + 60
    while done < 40 and time.monotonic() < deadline:
        time.sleep(0.2)
        with contextlib.suppress(sqlite3.OperationalError):
            done = (
                sqlite3.connect(assay_home / "logs.db")
                .execute("SELECT COUNT(*) FROM eval_results")
                .fetchone()[0]
            )
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    logged = {
        r[0]
        for r in sqlite3.connect(assay_home / "logs.db").execute(
            "SELECT r.prompt FROM eval_results e JOIN responses r ON r.id = e.response_id"
        )
    }
    assert 40 <= len(logged) < 200
    result = assay("eval", str(tmp_path / "s.yaml"), "-j", "4", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    jobs = sqlite3.connect(assay_home / "logs.db").execute("SELECT id FROM jobs").fetchall()
    assert jobs == [(summary["run"],)]  # the same run, resumed
    assert summary["groups"][0]["n"] == 200 and summary["pass_rate"] == 1.0
    conn = sqlite3.connect(assay_home / "logs.db")
    assert conn.execute("SELECT COUNT(DISTINCT idx), COUNT(*) FROM eval_results").fetchone() == (
        200,
        200,
    )
    served = sqlite3.connect(upstream.home / "logs.db")
    counts = dict(
        served.execute(
            "SELECT prompt, COUNT(*) FROM responses WHERE prompt LIKE 'kill-eval %' GROUP BY prompt"
        ).fetchall()
    )
    assert len(counts) == 200  # every case reached the server
    # A case logged before the kill was never sent again. (Cases in flight, or finished
    # in the last group commit's 50 ms, were not logged, and may be sent twice.)
    assert all(counts[p] == 1 for p in logged)


def test_a_rerun_comes_from_the_cache_and_explains_misses(assay_home: Path, tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(
        "prompts: ['{{q}}']\nproviders: [{id: echo, config: {temperature: 0}}]\ntests:\n"
        "  - {vars: {q: a}}\n  - {vars: {q: b}}\n"
    )
    first = json.loads(assay("eval", str(tmp_path / "s.yaml"), "--json").stdout)
    assert first["groups"][0]["cached"] == 0
    again = json.loads(assay("eval", str(tmp_path / "s.yaml"), "--json").stdout)
    assert again["run"] != first["run"] and again["groups"][0]["cached"] == 2
    (tmp_path / "s.yaml").write_text(
        (tmp_path / "s.yaml").read_text().replace("temperature: 0", "temperature: 1")
    )
    changed = json.loads(
        assay("eval", str(tmp_path / "s.yaml"), "--json", "--explain-cache").stdout
    )
    assert changed["cache_misses"] == {
        "the prompt was cached with different options (temperature)": 2
    }


@pytest.mark.slow
def test_the_example_suite_runs_on_the_bundled_models(assay_home: Path, tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    result = assay(
        "eval",
        "promptfooconfig.yaml",
        "--output",
        str(report),
        "--json",
        cwd=ROOT / "examples" / "eval",
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    groups = {(g["prompt"], g["provider"]): g for g in summary["groups"]}
    assert set(groups) == {
        (p, m) for p in ("bare", "one-word", "few-shot") for m in ("smollm2", "gemma3-270m")
    }
    assert all(g["n"] == 6 and g["errors"] == 0 for g in groups.values())
    assert all(g["output_tokens"] > 0 for g in groups.values())
    assert "<h2>Summary</h2>" in report.read_text()


def test_what_a_python_assertion_prints_is_not_its_answer(assay_home: Path, tmp_path: Path) -> None:
    tests = [
        {
            "description": f"t{i}",
            "vars": {"x": str(i)},
            "assert": [{"type": "python", "value": f"print('noise')\nreturn {ok}"}],
        }
        for i, ok in enumerate([False, True, False, True])
    ]
    suite = evals.suite_from_dict({"prompts": ["{{x}}"], "providers": ["echo"], "tests": tests})
    run_id, _ = evals.run(suite, concurrency=1)
    assert [r["pass"] for r in evals.results(run_id)] == [False, True, False, True]


def test_small_paired_samples_are_never_called_significant() -> None:
    from assay.evals.stats import sign_flip_p

    assert paired_bootstrap([0.0], [1.0])[3] == 1.0
    assert sign_flip_p([0.5, 0.5, 0.5]) == pytest.approx(0.25)  # 2 of 8 sign patterns
    assert sign_flip_p([1.0] * 6) == pytest.approx(2 / 64)
    assert sign_flip_p([0.3, -0.3] * 10) == 1.0
