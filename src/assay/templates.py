"""``{{name}}`` templates, as in ``assay cost estimate 'Describe {{path}}' FILES``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .errors import UsageError

__all__ = ["render"]

_VAR = re.compile(r"{{\s*([A-Za-z_][A-Za-z0-9_.]*)\s*}}")


def render(template: str, values: Mapping[str, Any]) -> str:
    """Replace each ``{{name}}``; an unknown name is an error, never an empty string."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            known = ", ".join(sorted(values)) or "none"
            raise UsageError(f"the template uses {{{{{name}}}}}, which is not set (known: {known})")
        return str(values[name])

    return _VAR.sub(replace, template)
