"""Grading one output against a test's assertions, as promptfoo scores them.

Each assertion gives a pass and a score in [0, 1]; ``not-`` flips both. A test
passes when every assertion passes or, when it sets ``threshold``, when the
weighted mean score reaches it. Its score is that weighted mean.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import AssayError, UsageError
from .suite import Assertion, TestCase

__all__ = ["Grade", "Grader", "Verdict", "find_json", "levenshtein", "parse_verdict"]

RUBRIC_PROMPT = """You are grading an output against a rubric. Read both, then reply with \
only a JSON object: {{"reason": "<one sentence>", "pass": true or false, "score": <0.0 to 1.0>}}.

<Output>
{output}
</Output>
<Rubric>
{rubric}
</Rubric>"""


@dataclass
class Grade:
    assertion: str
    passed: bool
    score: float
    reason: str = ""
    metric: str | None = None
    weight: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "assertion": self.assertion,
            "pass": self.passed,
            "score": self.score,
            "reason": self.reason,
            "metric": self.metric,
            "weight": self.weight,
        }


@dataclass
class Verdict:
    passed: bool
    score: float
    grades: list[Grade]
    reason: str = ""


def levenshtein(a: str, b: str) -> int:
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def find_json(text: str) -> Any:
    """The first JSON object or array inside ``text``; raises ValueError if there is none."""
    decoder = json.JSONDecoder()
    for i, ch in enumerate(text):
        if ch in "{[":
            try:
                value, _ = decoder.raw_decode(text, i)
            except ValueError:
                continue
            return value
    raise ValueError("no JSON object or array in the output")


def parse_verdict(text: str) -> tuple[bool, float, str]:
    """A judge's verdict, read robustly: JSON first, then PASS/FAIL or yes/no words."""
    try:
        data = find_json(text)
    except ValueError:
        data = None
    if isinstance(data, dict) and ("pass" in data or "score" in data):
        raw_pass = data.get("pass")
        score = data.get("score")
        if isinstance(raw_pass, str):
            raw_pass = raw_pass.strip().lower() in ("true", "yes", "pass")
        if not isinstance(score, (int, float)) or isinstance(score, bool):
            score = 1.0 if raw_pass else 0.0
        passed = bool(raw_pass) if raw_pass is not None else score >= 0.5
        return passed, max(0.0, min(1.0, float(score))), str(data.get("reason", ""))
    words = re.findall(
        r"\b(pass|passes|passed|fail|fails|failed|yes|no|true|false)\b", text.lower()
    )
    if words:
        passed = words[0] in ("pass", "passes", "passed", "yes", "true")
        return passed, 1.0 if passed else 0.0, text.strip()[:200]
    raise ValueError(f"the judge gave no verdict: {text.strip()[:80]!r}")


def _as_list(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    raise UsageError(f"expected a list of strings, got {value!r}")


def _schema_check(value: Any, data: Any) -> str | None:
    if not value:
        return None
    import jsonschema

    schema = value
    if isinstance(value, str):
        try:
            schema = json.loads(value)
        except ValueError:
            raise UsageError("a JSON Schema value must be a mapping or JSON text") from None
    try:
        jsonschema.validate(data, schema)
    except jsonschema.ValidationError as e:
        return f"does not match the schema: {e.message}"
    except jsonschema.SchemaError as e:
        raise UsageError(f"invalid JSON Schema: {e.message}") from None
    return None


Ask = Callable[[str, str], Awaitable[str]]  # (judge model, prompt) -> text
Embed = Callable[[list[str]], Awaitable[list[list[float]]]]


class Grader:
    """Grades outputs; model-graded and python assertions call out through the hooks."""

    def __init__(
        self,
        *,
        ask: Ask,
        embed: Embed,
        python: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]],
        judge: str | None,
        base: Path,
    ) -> None:
        self.ask = ask
        self.embed = embed
        self.python = python
        self.judge = judge
        self.base = base

    async def grade(
        self,
        test: TestCase,
        output: str,
        *,
        error: str | None,
        cost_usd: float | None,
        latency_ms: float | None,
        prompt: str,
    ) -> Verdict:
        if error is not None:
            return Verdict(False, 0.0, [], error)
        grades: list[Grade] = []
        for a in test.asserts:
            try:
                passed, score, reason = await self._one(
                    a, test, output, cost_usd, latency_ms, prompt
                )
            except AssayError as e:
                passed, score, reason = False, 0.0, f"could not grade: {e}"
                if a.negate:  # an assertion that cannot run fails either way
                    passed, score = True, 1.0
            if a.negate:
                passed, score = not passed, 1.0 - score
                reason = f"not: {reason}" if reason else ""
            grades.append(Grade(a.name, passed, score, reason, a.metric, a.weight))
        if not grades:
            return Verdict(True, 1.0, [])
        total = sum(g.weight for g in grades) or 1.0
        score = sum(g.score * g.weight for g in grades) / total
        if test.threshold is not None:
            passed = score >= float(test.threshold)
        else:
            passed = all(g.passed for g in grades)
        failed = [
            f"{g.assertion}: {g.reason}" if g.reason else g.assertion
            for g in grades
            if not g.passed
        ]
        return Verdict(passed, score, grades, "; ".join(failed))

    async def _one(
        self,
        a: Assertion,
        test: TestCase,
        output: str,
        cost_usd: float | None,
        latency_ms: float | None,
        prompt: str,
    ) -> tuple[bool, float, str]:
        kind, value = a.type, a.value
        if (
            kind
            in (
                "equals",
                "contains",
                "icontains",
                "starts-with",
                "regex",
                "levenshtein",
                "similar",
                "llm-rubric",
            )
            and value is None
        ):
            raise UsageError(f"{kind} needs a value")
        if kind == "equals":
            if isinstance(value, (dict, list)):
                try:
                    ok = json.loads(output) == value
                except ValueError:
                    ok = False
            else:
                ok = output == str(value)
            return ok, float(ok), "" if ok else f"expected {str(value)[:60]!r}"
        if kind == "contains":
            ok = str(value) in output
            return ok, float(ok), "" if ok else f"does not contain {str(value)[:60]!r}"
        if kind == "icontains":
            ok = str(value).lower() in output.lower()
            return ok, float(ok), "" if ok else f"does not contain {str(value)[:60]!r}"
        if kind == "contains-any":
            wanted = _as_list(value)
            ok = any(w in output for w in wanted)
            return ok, float(ok), "" if ok else f"contains none of {wanted}"
        if kind == "contains-all":
            missing = [w for w in _as_list(value) if w not in output]
            return not missing, float(not missing), f"missing {missing}" if missing else ""
        if kind == "starts-with":
            ok = output.startswith(str(value))
            return ok, float(ok), "" if ok else f"does not start with {str(value)[:60]!r}"
        if kind == "regex":
            try:
                ok = re.search(str(value), output) is not None
            except re.error as e:
                raise UsageError(f"bad regex {value!r}: {e}") from None
            return ok, float(ok), "" if ok else f"does not match /{value}/"
        if kind == "levenshtein":
            limit = a.threshold if a.threshold is not None else 5
            distance = levenshtein(output, str(value))
            ok = distance <= limit
            return ok, float(ok), f"distance {distance} (at most {limit:g})"
        if kind in ("is-json", "contains-json"):
            try:
                data = json.loads(output) if kind == "is-json" else find_json(output)
            except ValueError as e:
                return False, 0.0, f"not JSON: {e}"
            problem = _schema_check(value, data)
            return problem is None, float(problem is None), problem or ""
        if kind == "cost":
            if a.threshold is None:
                raise UsageError("a cost assertion needs a threshold ($)")
            if cost_usd is None:
                return False, 0.0, "the cost is unknown"
            ok = cost_usd <= a.threshold
            return ok, float(ok), f"${cost_usd:.6f} (at most ${a.threshold:g})"
        if kind == "latency":
            if a.threshold is None:
                raise UsageError("a latency assertion needs a threshold (ms)")
            if latency_ms is None:
                return False, 0.0, "the latency is unknown"
            ok = latency_ms <= a.threshold
            return ok, float(ok), f"{latency_ms:.0f} ms (at most {a.threshold:g} ms)"
        if kind == "python":
            return await self._python(a, test, output, prompt)
        if kind == "llm-rubric":
            judge = a.provider or test.judge or self.judge
            if not judge:
                raise UsageError("llm-rubric needs a judge: --judge MODEL or options.provider")
            text = await self.ask(judge, RUBRIC_PROMPT.format(output=output, rubric=value))
            try:
                passed, score, reason = parse_verdict(text)
            except ValueError as e:
                return False, 0.0, str(e)
            if a.threshold is not None:
                passed = score >= a.threshold
            return passed, score, reason
        if kind == "similar":
            limit = a.threshold if a.threshold is not None else 0.75
            if not output.strip():
                return False, 0.0, "the output is empty"
            left, right = await self.embed([output, str(value)])
            dot = sum(x * y for x, y in zip(left, right, strict=True))
            norm = math.sqrt(sum(x * x for x in left)) * math.sqrt(sum(y * y for y in right))
            similarity = dot / norm if norm else 0.0
            ok = similarity >= limit
            return ok, max(0.0, similarity), f"similarity {similarity:.3f} (at least {limit:g})"
        raise UsageError(f"unsupported assertion type {kind!r}")

    async def _python(
        self, a: Assertion, test: TestCase, output: str, prompt: str
    ) -> tuple[bool, float, str]:
        value = str(a.value or "")
        request: dict[str, Any] = {
            "output": output,
            "context": {
                "vars": test.vars,
                "prompt": prompt,
                "test": {"description": test.description},
            },
        }
        if value.startswith("file://"):
            ref = value[7:]
            name, _, function = ref.partition(":")
            path = (self.base / name).resolve()
            if not path.exists():
                raise UsageError(f"python assertion file {name} does not exist")
            request.update(file=str(path), function=function or None)
        else:
            request["code"] = value
        answer = await self.python(request)
        if "error" in answer:
            return False, 0.0, f"python: {answer['error']}"
        score = float(answer.get("score", 0.0))
        if "pass" in answer:
            passed = bool(answer["pass"])
        else:
            passed = score >= a.threshold if a.threshold is not None else score > 0
        if a.threshold is not None:
            passed = passed and score >= a.threshold
        return passed, max(0.0, min(1.0, score)), str(answer.get("reason", ""))
