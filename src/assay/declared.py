"""``models.yaml``: models you declare by hand, such as OpenAI-compatible endpoints.

Each entry is a mapping::

    - alias: groq-llama            # the name you pass to -m (``id`` also works)
      base_url: https://api.groq.com/openai/v1
      model: llama-3.1-8b-instant  # the name the server knows (defaults to alias)
      key_name: groq               # read from GROQ_API_KEY or `assay keys set groq`
      context_length: 131072       # optional
      aliases: [groq]              # optional
      attachments: [image/png, image/jpeg]  # optional: MIME types the model takes
      extra_body: {top_k: 20}      # optional: fields added to every request body
      provider: openai             # optional, openai is the default

Unknown fields are an error that names the file and line, never skipped.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from .errors import UsageError
from .settings import user_dir

__all__ = ["declared_models", "models_yaml_path"]

_TYPES = (
    ("alias", str, "a string"),
    ("id", str, "a string"),
    ("base_url", str, "a string"),
    ("model", str, "a string"),
    ("key_name", str, "a string"),
    ("key_env", str, "a string"),
    ("provider", str, "a string"),
    ("description", str, "a string"),
    ("context_length", int, "a whole number"),
    ("aliases", list, "a list of strings"),
    ("attachments", list, "a list of MIME types"),
    ("headers", dict, "a mapping of strings"),
    ("extra_body", object, "a mapping"),
)
FIELDS = {name for name, _, _ in _TYPES}


def _is(value: Any, kind: type) -> bool:
    if kind is list:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if kind is dict:
        return isinstance(value, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        )
    if kind is object:
        return isinstance(value, dict) and all(isinstance(k, str) for k in value)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def models_yaml_path() -> Path:
    return user_dir() / "models.yaml"


def declared_models(provider: str) -> list[dict[str, Any]]:
    """The entries of ``models.yaml`` that belong to ``provider``."""
    path = models_yaml_path()
    if not path.exists():
        return []
    stat = path.stat()
    entries = _load(str(path), stat.st_mtime_ns, stat.st_size)
    return [e for e in entries if e.get("provider", "openai") == provider]


@lru_cache(maxsize=4)
def _load(path: str, _mtime: int, _size: int) -> list[dict[str, Any]]:
    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.compose(f, Loader=yaml.SafeLoader)
            f.seek(0)
            values = yaml.safe_load(f)
    except yaml.MarkedYAMLError as e:
        line = e.problem_mark.line + 1 if e.problem_mark else "?"
        raise UsageError(f"{path}:{line}: invalid YAML: {e.problem}") from None
    except (OSError, yaml.YAMLError) as e:
        raise UsageError(f"cannot read {path}: {e}") from None
    if values is None:
        return []
    if not isinstance(values, list) or data is None:
        raise UsageError(f"{path}:1: models.yaml must be a list of models")
    result = []
    for node, entry in zip(data.value, values, strict=True):
        line = node.start_mark.line + 1
        if not isinstance(entry, dict):
            raise UsageError(f"{path}:{line}: each model must be a mapping")
        unknown = sorted(set(entry) - FIELDS)
        if unknown:
            raise UsageError(f"{path}:{line}: unsupported field {unknown[0]!r}")
        for field in ("alias", "id", "model"):  # YAML reads `alias: 500` as a number
            if isinstance(entry.get(field), (int, float)) and not isinstance(entry[field], bool):
                entry[field] = str(entry[field])
        name = entry.get("alias") or entry.get("id")
        if not name:
            raise UsageError(f"{path}:{line}: a model needs an 'alias'")
        for field, kind, label in _TYPES:
            if entry.get(field) is not None and not _is(entry[field], kind):
                raise UsageError(f"{path}:{line}: {field!r} must be {label}")
        entry = {**entry, "alias": str(name), "_where": f"{path}:{line}"}
        result.append(entry)
    return result
