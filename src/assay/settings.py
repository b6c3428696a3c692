"""Where assay keeps its files, and the small settings it manages itself.

``ASSAY_HOME`` overrides the user directory. Inside it:

- ``logs.db``       the SQLite log store
- ``keys.json``     API keys, mode 0600
- ``models.yaml``   models you declare by hand (OpenAI-compatible endpoints)
- ``settings.json`` what assay's own commands change: default model, aliases,
  GGUF files added with ``assay models add-gguf``
- ``models/``       model files assay assembles (for example Gemma 3 270M)
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from .errors import UsageError

__all__ = ["DEFAULT_MODEL", "Settings", "user_dir"]

DEFAULT_MODEL = "smollm2"


def user_dir() -> Path:
    """The directory that holds assay's files (created on first use)."""
    env = os.environ.get("ASSAY_HOME")
    if env:
        path = Path(env).expanduser()
    else:
        from platformdirs import user_data_dir

        path = Path(user_data_dir("assay", appauthor=False))
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot use {path} as assay's directory: {e.strerror or e}") from None
    return path


def write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    """Write ``text`` to ``path`` so that readers see the old or the new file, never half."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class Settings:
    """``settings.json``: the default model, aliases and added GGUF files."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or user_dir() / "settings.json"
        self.data: dict[str, Any] = self._read()

    def _read(self) -> dict[str, Any]:
        if not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise UsageError(f"cannot read {self.path}: {e}") from None
        if not isinstance(data, dict):
            raise UsageError(f"{self.path} must hold a JSON object")
        return data

    def save(self) -> None:
        write_atomic(self.path, json.dumps(self.data, indent=2, sort_keys=True) + "\n")

    @property
    def default_model(self) -> str:
        env = os.environ.get("ASSAY_DEFAULT_MODEL")
        return env or str(self.data.get("default_model") or DEFAULT_MODEL)

    @default_model.setter
    def default_model(self, name: str) -> None:
        self.data["default_model"] = name

    def _table(self, name: str) -> dict[str, Any]:
        value = self.data.setdefault(name, {})
        if not isinstance(value, dict):
            raise UsageError(f"{self.path}: {name!r} must be a JSON object")
        return value

    @property
    def aliases(self) -> dict[str, str]:
        return self._table("aliases")

    @property
    def gguf_models(self) -> dict[str, dict[str, Any]]:
        return self._table("gguf_models")
