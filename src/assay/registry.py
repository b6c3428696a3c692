"""Find providers through entry points and resolve model names and aliases."""

from __future__ import annotations

import difflib
import sys
from functools import lru_cache

from .errors import UnknownModelError
from .providers.base import Provider
from .settings import Settings
from .types import ModelSpec

__all__ = ["ENTRY_POINT_GROUP", "all_models", "providers", "resolve"]

ENTRY_POINT_GROUP = "assay.providers"


@lru_cache(maxsize=1)
def providers() -> dict[str, Provider]:
    """Every installed provider, built-ins included, keyed by name."""
    from importlib.metadata import entry_points

    found: dict[str, Provider] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            cls = ep.load()
            provider = cls()
        except Exception as e:  # a broken plugin must not break assay
            print(f"assay: skipping provider {ep.name!r}: {e}", file=sys.stderr)
            continue
        if not isinstance(provider, Provider):
            print(f"assay: skipping provider {ep.name!r}: not a Provider", file=sys.stderr)
            continue
        found[getattr(provider, "name", ep.name)] = provider
    # Built-ins first (real models before the fake), then plugins by name.
    order = {"local": 0, "openai": 1, "anthropic": 1, "gemini": 1, "echo": 3}
    return dict(sorted(found.items(), key=lambda kv: (order.get(kv[0], 2), kv[0])))


def all_models() -> list[tuple[Provider, ModelSpec]]:
    result: list[tuple[Provider, ModelSpec]] = []
    for provider in providers().values():
        result.extend((provider, spec) for spec in provider.models())
    return result


def resolve(name: str | None, settings: Settings | None = None) -> tuple[Provider, ModelSpec]:
    """The provider and spec for a model id or alias (the default model when ``name`` is None)."""
    settings = settings or Settings()
    wanted = name or settings.default_model
    wanted = settings.aliases.get(wanted, wanted)
    models = all_models()
    for provider, spec in models:
        if spec.id == wanted:
            return provider, spec
    for provider, spec in models:
        if wanted in spec.aliases:
            return provider, spec
    names = [s.id for _, s in models] + [a for _, s in models for a in s.aliases]
    close = difflib.get_close_matches(wanted, names, n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise UnknownModelError(f"unknown model {wanted!r}{hint}; run 'assay models' to list them")
