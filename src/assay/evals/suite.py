"""Eval suites: promptfoo-compatible YAML (the common subset), or built in Python.

Supported, exactly (anything else is an error naming the field, file and line):

- top level: ``description``, ``prompts``, ``providers``, ``tests``, ``defaultTest``;
- ``prompts``: strings (inline, or ``file://path`` to a ``.txt``/``.md`` file, whose
  ``---`` lines separate several prompts, or a ``.json`` chat: a list of
  ``{role, content}``), or mappings with ``raw`` or ``id`` (a ``file://`` path)
  and ``label``; Jinja/Nunjucks ``{{var}}`` templates;
- ``providers``: ids (``openai:chat:MODEL``, ``openai:MODEL``,
  ``anthropic:messages:MODEL``, ``google:MODEL``, ``echo``, or any assay model id
  or alias), or mappings with ``id``, ``label`` and ``config`` (``apiBaseUrl``,
  ``temperature``, ``max_tokens``, ``top_p``, ``seed``, ``stop``);
- ``tests``: a list of tests, or ``file://`` CSV (columns are vars; ``__expected``,
  ``__expected1``…, ``__description``), JSONL (a test per line) or YAML; each test
  has ``description``, ``vars``, ``assert``, ``threshold``, ``options.provider``
  (the judge for model-graded assertions);
- ``defaultTest``: ``vars``, ``assert``, ``threshold``, ``options.provider``;
- ``assert``: ``type`` (optionally ``not-``), ``value``, ``threshold``, ``weight``,
  ``metric``, ``provider``.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import UsageError

__all__ = [
    "ASSERTION_TYPES",
    "Assertion",
    "Prompt",
    "ProviderRef",
    "Suite",
    "TestCase",
    "load_suite",
    "suite_from_dict",
]

ASSERTION_TYPES = frozenset(
    {
        "equals",
        "contains",
        "icontains",
        "contains-any",
        "contains-all",
        "regex",
        "starts-with",
        "levenshtein",
        "is-json",
        "contains-json",
        "python",
        "llm-rubric",
        "similar",
        "cost",
        "latency",
    }
)
TOP_FIELDS = {"description", "prompts", "providers", "tests", "defaultTest"}
TEST_FIELDS = {"description", "vars", "assert", "threshold", "options"}
ASSERT_FIELDS = {"type", "value", "threshold", "weight", "metric", "provider"}
PROVIDER_FIELDS = {"id", "label", "config"}
CONFIG_FIELDS = {"apiBaseUrl", "temperature", "max_tokens", "top_p", "seed", "stop"}
PROMPT_FIELDS = {"raw", "id", "label"}
OPTION_FIELDS = {"provider"}


class Node(dict):  # type: ignore[type-arg]
    """A YAML mapping that remembers the line of each key."""

    lines: dict[str, int]
    line: int


class _Loader(yaml.SafeLoader):
    """YAML 1.2 booleans, as promptfoo's js-yaml reads them: only true and false.

    (YAML 1.1, PyYAML's default, turns ``yes``, ``no``, ``on`` and ``off`` into
    booleans, so ``vars: {answer: no}`` would become False.)
    """


_Loader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


def _mapping(loader: _Loader, node: yaml.MappingNode) -> Node:
    loader.flatten_mapping(node)
    out = Node()
    out.lines = {}
    out.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        out[key] = loader.construct_object(value_node, deep=True)
        out.lines[str(key)] = key_node.start_mark.line + 1
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def read_yaml(path: Path) -> Any:
    try:
        text = path.read_text("utf-8")
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror or e}") from None
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise UsageError(f"{where}: invalid YAML: {e.problem}") from None
    except yaml.YAMLError as e:
        raise UsageError(f"{path}: invalid YAML: {e}") from None


def _where(path: Path, node: Any, key: str | None = None) -> str:
    if isinstance(node, Node):
        line = node.lines.get(key, node.line) if key is not None else node.line
        return f"{path}:{line}"
    return str(path)


def _check_fields(path: Path, node: Any, allowed: set[str], what: str) -> None:
    if not isinstance(node, dict):
        raise UsageError(f"{_where(path, node)}: {what} must be a mapping")
    for key in node:
        if key not in allowed:
            raise UsageError(
                f"{_where(path, node, str(key))}: unsupported field {key!r} in {what}"
                f" (supported: {', '.join(sorted(allowed))}; see docs/eval.md)"
            )


@dataclass
class Assertion:
    type: str
    value: Any = None
    threshold: float | None = None
    weight: float = 1.0
    metric: str | None = None
    negate: bool = False
    provider: str | None = None  # the judge, for llm-rubric

    @property
    def name(self) -> str:
        return ("not-" if self.negate else "") + self.type


@dataclass
class TestCase:
    index: int
    description: str | None = None
    vars: dict[str, Any] = field(default_factory=dict)
    asserts: list[Assertion] = field(default_factory=list)
    threshold: float | None = None
    judge: str | None = None
    error: str | None = None  # a row that could not be read: it fails, the rest run


@dataclass
class Prompt:
    label: str
    template: str  # a Jinja template; for a chat prompt, of the JSON list of messages
    chat: bool = False


@dataclass
class ProviderRef:
    label: str
    model: str  # an assay model id or alias
    options: dict[str, Any] = field(default_factory=dict)
    base_url: str | None = None  # openai-compatible endpoint from config.apiBaseUrl
    remote_model: str | None = None


@dataclass
class Suite:
    path: Path | None
    description: str | None
    prompts: list[Prompt]
    providers: list[ProviderRef]
    tests_source: Any  # a list of raw tests, or a Path to a CSV/JSONL/YAML file
    default: dict[str, Any] = field(default_factory=dict)
    base: Path = field(default_factory=Path.cwd)  # where file:// paths are found

    def tests(self) -> Iterator[TestCase]:
        """The tests, read lazily (a 100,000-row CSV is never held in memory)."""
        base = self.base
        where = self.path or Path("<suite>")
        if isinstance(self.tests_source, Path):
            yield from _tests_from_file(self.tests_source, base, self.default)
            return
        for i, raw in enumerate(self.tests_source or []):
            yield _test(where, raw, i, base, self.default)

    def fingerprint_data(self) -> dict[str, Any]:
        """What decides this suite's results, for finding an unfinished run of it."""
        import hashlib

        digest = hashlib.sha256()
        for test in self.tests():
            digest.update(
                repr(
                    (
                        test.description,
                        sorted(test.vars.items(), key=str),
                        [a.__dict__ for a in test.asserts],
                        test.threshold,
                        test.judge,
                        test.error,
                    )
                ).encode()
            )
        return {
            "prompts": [p.__dict__ for p in self.prompts],
            "providers": [p.__dict__ for p in self.providers],
            "tests": digest.hexdigest(),
        }


def _file_ref(value: Any) -> str | None:
    return value[7:] if isinstance(value, str) and value.startswith("file://") else None


def _prompts(path: Path, raw: Any, base: Path) -> list[Prompt]:
    if raw is None:
        raise UsageError(f"{path}: the suite has no prompts")
    items = raw if isinstance(raw, list) else [raw]
    prompts: list[Prompt] = []
    for item in items:
        label = None
        if isinstance(item, dict):
            _check_fields(path, item, PROMPT_FIELDS, "a prompt")
            label = item.get("label")
            item = item.get("raw") or item.get("id")
            if not isinstance(item, str):
                raise UsageError(f"{path}: a prompt mapping needs 'raw' or 'id'")
        if not isinstance(item, str):
            raise UsageError(f"{path}: each prompt must be a string or a mapping")
        ref = _file_ref(item)
        if ref is None:
            prompts.append(Prompt(label or item[:60], item))
            continue
        file = (base / ref).resolve()
        try:
            text = file.read_text("utf-8")
        except OSError as e:
            raise UsageError(f"{path}: prompt file {ref}: {e.strerror or e}") from None
        if file.suffix == ".json":
            try:
                messages = json.loads(text)
            except ValueError as e:
                raise UsageError(f"{file}:{e.lineno}: invalid JSON: {e.msg}") from None  # type: ignore[attr-defined]
            if not isinstance(messages, list) or not all(
                isinstance(m, dict) and {"role", "content"} <= set(m) for m in messages
            ):
                raise UsageError(f"{file}: a chat prompt is a list of {{role, content}}")
            prompts.append(Prompt(label or ref, text, chat=True))
            continue
        parts = [p.strip() for p in text.split("\n---\n")] if "\n---\n" in text else [text]
        for n, part in enumerate(parts):
            name = label or ref
            prompts.append(Prompt(name if len(parts) == 1 else f"{name}#{n + 1}", part))
    labels = [p.label for p in prompts]
    if len(set(labels)) != len(labels):
        raise UsageError(f"{path}: two prompts have the same label: give each a 'label'")
    return prompts


_PREFIXES = {
    "openai:chat:": None,
    "openai:responses:": None,
    "openai:": None,
    "anthropic:messages:": None,
    "anthropic:": None,
    "google:": None,
    "vertex:": None,
    "assay:": None,
}


def _provider(path: Path, raw: Any) -> ProviderRef:
    config: dict[str, Any] = {}
    label = None
    if isinstance(raw, dict):
        _check_fields(path, raw, PROVIDER_FIELDS, "a provider")
        label = raw.get("label")
        config = raw.get("config") or {}
        _check_fields(path, config, CONFIG_FIELDS, "a provider's config")
        raw = raw.get("id")
    if not isinstance(raw, str) or not raw:
        raise UsageError(f"{path}: each provider needs an id")
    model = raw
    for prefix in _PREFIXES:
        if raw.startswith(prefix):
            model = raw[len(prefix) :]
            break
    options = {k: v for k, v in config.items() if k != "apiBaseUrl"}
    base_url = config.get("apiBaseUrl")
    return ProviderRef(label or raw, model, options, base_url, model if base_url else None)


def _assertion(path: Path, raw: Any) -> Assertion:
    _check_fields(path, raw, ASSERT_FIELDS, "an assertion")
    kind = raw.get("type")
    if not isinstance(kind, str):
        raise UsageError(f"{_where(path, raw)}: an assertion needs a type")
    negate = kind.startswith("not-")
    base_kind = kind[4:] if negate else kind
    if base_kind not in ASSERTION_TYPES:
        raise UsageError(
            f"{_where(path, raw, 'type')}: unsupported assertion type {kind!r}"
            f" (supported: {', '.join(sorted(ASSERTION_TYPES))})"
        )
    threshold = raw.get("threshold")
    weight = raw.get("weight", 1.0)
    for name, value in (("threshold", threshold), ("weight", weight)):
        if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)):
            raise UsageError(f"{_where(path, raw, name)}: {name} must be a number")
    return Assertion(
        type=base_kind,
        value=raw.get("value"),
        threshold=float(threshold) if threshold is not None else None,
        weight=float(weight),
        metric=raw.get("metric"),
        negate=negate,
        provider=raw.get("provider"),
    )


def _vars(path: Path, raw: Any, base: Path) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise UsageError(f"{_where(path, raw)}: vars must be a mapping")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        ref = _file_ref(value)
        if ref is not None:
            try:
                value = (base / ref).read_text("utf-8")
            except OSError as e:
                raise UsageError(
                    f"{_where(path, raw, key)}: var {key}: {ref}: {e.strerror}"
                ) from None
        out[str(key)] = value
    return out


def _test(path: Path, raw: Any, index: int, base: Path, default: dict[str, Any]) -> TestCase:
    _check_fields(path, raw, TEST_FIELDS, "a test")
    asserts = raw.get("assert") or []
    if not isinstance(asserts, list):
        raise UsageError(f"{_where(path, raw, 'assert')}: assert must be a list")
    options = raw.get("options") or {}
    _check_fields(path, options, OPTION_FIELDS, "a test's options")
    threshold = raw.get("threshold")
    if threshold is not None and (
        not isinstance(threshold, (int, float)) or isinstance(threshold, bool)
    ):
        raise UsageError(f"{_where(path, raw, 'threshold')}: threshold must be a number")
    return TestCase(
        index=index,
        description=raw.get("description"),
        vars={**default.get("vars", {}), **_vars(path, raw.get("vars"), base)},
        asserts=[*default.get("asserts", []), *(_assertion(path, a) for a in asserts)],
        threshold=raw.get("threshold", default.get("threshold")),
        judge=options.get("provider") or default.get("judge"),
    )


def _expected(value: str) -> Assertion:
    """promptfoo's CSV shorthand: ``contains: x``, ``not-regex: y``, or a plain value (equals)."""
    for kind in sorted(ASSERTION_TYPES, key=len, reverse=True):
        for prefix in (f"not-{kind}:", f"{kind}:"):
            if value.startswith(prefix):
                rest = value[len(prefix) :].strip()
                body: Any = rest
                if kind in ("contains-any", "contains-all"):
                    body = [v.strip() for v in rest.split(",")]
                elif kind in ("cost", "latency"):
                    try:
                        limit = float(rest)
                    except ValueError:
                        raise UsageError(f"{kind}: wants a number, not {rest!r}") from None
                    return Assertion(kind, None, negate=prefix.startswith("not-"), threshold=limit)
                return Assertion(kind, body, negate=prefix.startswith("not-"))
    return Assertion("equals", value)


def _tests_from_file(file: Path, base: Path, default: dict[str, Any]) -> Iterator[TestCase]:
    suffix = file.suffix.lower()
    if suffix in (".yaml", ".yml"):
        data = read_yaml(file)
        if not isinstance(data, list):
            raise UsageError(f"{file}: a tests file holds a list of tests")
        for i, raw in enumerate(data):
            yield _test(file, raw, i, base, default)
        return
    try:
        f = open(file, encoding="utf-8", newline="")  # noqa: SIM115 - closed below
    except OSError as e:
        raise UsageError(f"cannot read tests file {file}: {e.strerror or e}") from None
    with f:
        if suffix == ".jsonl":
            i = 0
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    raw = json.loads(line)
                except ValueError as e:
                    raise UsageError(f"{file}:{n}: invalid JSON: {e.args[0]}") from None
                if not isinstance(raw, dict):
                    raise UsageError(f"{file}:{n}: each line must be a test (a JSON object)")
                try:
                    yield _test(file, raw, i, base, default)
                except UsageError as e:  # name the line: JSON carries no line numbers
                    raise UsageError(f"{file}:{n}: {str(e).removeprefix(f'{file}: ')}") from None
                i += 1
            return
        if suffix != ".csv":
            raise UsageError(f"{file}: tests files must be .csv, .jsonl or .yaml")
        reader = csv.reader(f, strict=True)
        try:
            header = next(reader, None)
        except csv.Error as e:
            raise UsageError(f"{file}:1: malformed CSV: {e}") from None
        if not header:
            return
        i = 0
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as e:
                raise UsageError(f"{file}:{reader.line_num}: malformed CSV: {e}") from None
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise UsageError(
                    f"{file}:{reader.line_num}: {len(row)} fields where the header has"
                    f" {len(header)}"
                )
            values = dict(zip(header, row, strict=True))
            try:
                asserts = [
                    _expected(v)
                    for k, v in values.items()
                    if k.startswith("__expected") and v.strip()
                ]
            except UsageError as e:
                raise UsageError(f"{file}:{reader.line_num}: {e}") from None
            variables = {k: v for k, v in values.items() if not k.startswith("__")}
            yield TestCase(
                index=i,
                description=values.get("__description"),
                vars={**default.get("vars", {}), **variables},
                asserts=[*default.get("asserts", []), *asserts],
                threshold=default.get("threshold"),
                judge=default.get("judge"),
            )
            i += 1


def load_suite(path: Path | str) -> Suite:
    """Read and check a promptfoo-style YAML suite; errors name the file and line."""
    path = Path(path)
    return _suite(path, read_yaml(path), path.resolve().parent, path)


def suite_from_dict(data: dict[str, Any], base: Path | str | None = None) -> Suite:
    """A suite written in code, in the same shape as the YAML (and checked the same way)."""
    return _suite(Path("<suite>"), data, Path(base or Path.cwd()).resolve(), None)


def _suite(path: Path, data: Any, base: Path, source: Path | None) -> Suite:
    if not isinstance(data, dict):
        raise UsageError(f"{path}: a suite is a mapping with prompts, providers and tests")
    _check_fields(path, data, TOP_FIELDS, "the suite")
    prompts = _prompts(path, data.get("prompts"), base)
    raw_providers = data.get("providers")
    if not raw_providers:
        raise UsageError(f"{path}: the suite has no providers")
    providers = [
        _provider(path, p)
        for p in (raw_providers if isinstance(raw_providers, list) else [raw_providers])
    ]
    labels = [p.label for p in providers]
    if len(set(labels)) != len(labels):
        raise UsageError(f"{path}: two providers have the same label: give each a 'label'")
    default: dict[str, Any] = {}
    if data.get("defaultTest") is not None:
        raw = data["defaultTest"]
        _check_fields(path, raw, TEST_FIELDS - {"description"}, "defaultTest")
        options = raw.get("options") or {}
        _check_fields(path, options, OPTION_FIELDS, "defaultTest's options")
        default = {
            "vars": _vars(path, raw.get("vars"), base),
            "asserts": [_assertion(path, a) for a in raw.get("assert") or []],
            "threshold": raw.get("threshold"),
            "judge": options.get("provider"),
        }
    tests: Any = data.get("tests")
    ref = _file_ref(tests)
    if ref is not None:
        tests = (base / ref).resolve()
        if not tests.exists():
            raise UsageError(f"{_where(path, data, 'tests')}: tests file {ref} does not exist")
    elif tests is None:
        tests = [{}]  # no tests: each prompt runs once, with no assertions
    elif not isinstance(tests, list):
        raise UsageError(f"{_where(path, data, 'tests')}: tests must be a list or a file:// path")
    suite = Suite(source, data.get("description"), prompts, providers, tests, default, base)
    if isinstance(tests, list):
        for _ in suite.tests():  # check every inline test now, before anything is sent
            pass
    return suite
