"""API keys: a 0600 JSON file in the user directory, plus environment variables.

Lookup order for a key named ``NAME``: an explicit key passed by the caller,
then the environment variable (``NAME_API_KEY`` unless the model names
another), then ``keys.json``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .errors import UsageError, register_secret
from .settings import user_dir, write_atomic

__all__ = ["env_var_for", "get_key", "keys_path", "list_keys", "set_key"]


def keys_path() -> Path:
    return user_dir() / "keys.json"


def _load() -> dict[str, str]:
    path = keys_path()
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise UsageError(f"cannot read keys file {path}: {e}") from None
    if not isinstance(data, dict):
        raise UsageError(f"keys file {path} must hold a JSON object")
    return {str(k): str(v) for k, v in data.items()}


def env_var_for(name: str) -> str:
    return f"{name.upper().replace('-', '_')}_API_KEY"


def get_key(name: str, env_var: str | None = None) -> str | None:
    """The key called ``name``, from the environment or the keys file, or None."""
    value = os.environ.get(env_var or env_var_for(name)) or _load().get(name)
    if value:
        register_secret(value)
    return value or None


def set_key(name: str, value: str) -> None:
    if not name or not value:
        raise UsageError("a key needs a name and a non-empty value")
    keys = _load()
    keys[name] = value
    write_atomic(keys_path(), json.dumps(keys, indent=2, sort_keys=True) + "\n", mode=0o600)


def list_keys() -> list[str]:
    return sorted(_load())
