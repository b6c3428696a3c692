"""Evals as tests for prompts: promptfoo-compatible suites, graded, with statistics.

from assay import evals

suite = evals.suite_from_dict({
    "prompts": ["Answer in one word: {{question}}"],
    "providers": ["smollm2", "gemma3-270m"],
    "tests": [{"vars": {"question": "What colour is the sky?"},
               "assert": [{"type": "icontains", "value": "blue"}]}],
})
run_id, groups = evals.run(suite, repeat=3)
for g in groups:
    print(g.prompt, g.provider, g.pass_rate, (g.pass_low, g.pass_high))
print(evals.compare(previous_run_id, run_id))
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .results import Group, compare, export, flaky, results, summary
from .run import EvalOptions, EvalPlan, plan_eval, run_eval
from .stats import bootstrap_mean, mcnemar_exact, paired_bootstrap, wilson
from .suite import Assertion, Prompt, ProviderRef, Suite, TestCase, load_suite, suite_from_dict

__all__ = [
    "Assertion",
    "EvalOptions",
    "EvalPlan",
    "Group",
    "Prompt",
    "ProviderRef",
    "Suite",
    "TestCase",
    "bootstrap_mean",
    "compare",
    "export",
    "flaky",
    "load_suite",
    "mcnemar_exact",
    "paired_bootstrap",
    "plan_eval",
    "results",
    "run",
    "run_eval",
    "suite_from_dict",
    "summary",
    "wilson",
]


def run(
    suite: Suite | Path | str, db: Path | str | None = None, **options: Any
) -> tuple[str, list[Group]]:
    """Run a suite (a :class:`Suite` or a YAML path); return the run id and its summary.

    ``options`` are :class:`EvalOptions` fields: ``repeat``, ``concurrency``, ``cache``,
    ``judge``, ``embedding_model``, ``timeout``, ``max_cost``...
    """
    plan = plan_eval(suite, EvalOptions(**options), db)
    run_id, _ = run_eval(plan)
    return run_id, summary(run_id, db)
