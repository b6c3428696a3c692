"""Typed model options, as given by ``-o key value`` or keyword arguments."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import OptionError

__all__ = ["COMMON_OPTIONS", "Option", "validate_options"]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _unescape(text: str) -> str:
    """Let `-o stop '\\n'` mean a newline."""
    if "\\" in text and text.isascii():
        return text.encode().decode("unicode_escape")
    return text


@dataclass(frozen=True)
class Option:
    name: str
    type: type
    help: str
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] = ()

    def coerce(self, value: Any) -> Any:
        try:
            result = self._convert(value)
        except (TypeError, ValueError):
            kinds = {
                list: "a list of strings",
                int: "an int",
                float: "a float",
                bool: "true or false",
            }
            kind = kinds.get(self.type, "a string")
            raise OptionError(f"option {self.name} must be {kind}, got {value!r}") from None
        if self.min is not None and result < self.min:
            raise OptionError(f"option {self.name} must be at least {self.min}, got {result}")
        if self.max is not None and result > self.max:
            raise OptionError(f"option {self.name} must be at most {self.max}, got {result}")
        if self.choices and result not in self.choices:
            raise OptionError(
                f"option {self.name} must be one of {', '.join(self.choices)}, got {result!r}"
            )
        return result

    def _convert(self, value: Any) -> Any:
        if self.type is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
            raise ValueError(value)
        if self.type is list:
            values = [value] if isinstance(value, str) else value
            if not isinstance(values, (list, tuple)) or not all(isinstance(v, str) for v in values):
                raise ValueError(value)
            if not all(values):
                raise ValueError(value)
            return [_unescape(v) for v in values]
        if self.type is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(value)
            return int(value)
        if self.type is float:
            if isinstance(value, bool):
                raise ValueError(value)
            return float(value)
        return str(value)


COMMON_OPTIONS: tuple[Option, ...] = (
    Option("temperature", float, "Sampling temperature; 0 is greedy", 0, 2),
    Option("max_tokens", int, "Most tokens to generate", 1),
    Option("top_p", float, "Nucleus sampling mass", 0, 1),
    Option("seed", int, "Random seed, for repeatable sampling"),
    Option("stop", list, "Stop sequence (may be given more than once in Python)"),
)


def validate_options(
    given: Mapping[str, Any] | Iterable[tuple[str, Any]], accepted: Iterable[Option], model: str
) -> dict[str, Any]:
    """Check names and coerce values; unknown names and bad values raise OptionError."""
    by_name = {o.name: o for o in accepted}
    items = given.items() if isinstance(given, Mapping) else given
    result: dict[str, Any] = {}
    for raw_name, value in items:
        name = raw_name.replace("-", "_")
        option = by_name.get(name)
        if option is None:
            known = ", ".join(sorted(by_name)) or "none"
            raise OptionError(f"model {model} has no option {raw_name!r} (options: {known})")
        if value is None:
            continue
        coerced = option.coerce(value)
        if option.type is list and name in result:
            result[name] = [*result[name], *coerced]
        else:
            result[name] = coerced
    return result
