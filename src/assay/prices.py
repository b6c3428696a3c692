"""What a response costs, in US dollars.

Prices come from, in order:

1. ``prices.yaml`` in the user directory: your own per-million-token prices,
   for self-hosted or custom models (and to override anything below);
2. local GGUF models, the echo model and servers on this machine: free;
3. `genai-prices <https://github.com/pydantic/genai-prices>`_, a maintained
   price database, from the data bundled with the installed package, or from
   ``prices-data.json`` once you run ``assay prices update``. Nothing is fetched
   at run time otherwise.

``genai-prices`` is imported only when a hosted model is priced (it takes a few
hundred milliseconds to import).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .errors import UsageError
from .settings import user_dir, write_atomic
from .types import ModelSpec, Usage

__all__ = [
    "DATA_URL",
    "Price",
    "cost",
    "cost_from_price",
    "price_for",
    "prices_data_path",
    "prices_yaml_path",
    "update_prices",
]

DATA_URL = (
    "https://raw.githubusercontent.com/pydantic/genai-prices/refs/heads/main/prices/new_data/v2/"
    "data.json"
)
GENAI_PROVIDER = {"openai": "openai", "anthropic": "anthropic", "gemini": "google"}
_LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "0.0.0.0"}
_FIELDS = ("input", "output", "cache_read", "cache_write")


@dataclass(frozen=True)
class Price:
    """Dollars per million tokens, and where the figure came from."""

    input: float
    output: float
    cache_read: float | None = None
    cache_write: float | None = None
    source: str = ""
    note: str = ""  # e.g. tiers that the per-M figures above do not show


def prices_yaml_path() -> Path:
    return user_dir() / "prices.yaml"


def prices_data_path() -> Path:
    return user_dir() / "prices-data.json"


def cost_from_price(price: Price, usage: Usage, *, batch_discount: float = 1.0) -> float:
    """Dollars for ``usage`` at ``price``; cached reads and cache writes at their own rates."""
    total_in = usage.input_tokens or 0
    read = usage.cached_tokens or 0
    written = usage.cache_write_tokens or 0
    fresh = max(total_in - read - written, 0)
    dollars = fresh * price.input + (usage.output_tokens or 0) * price.output
    dollars += read * (price.cache_read if price.cache_read is not None else price.input)
    dollars += written * (price.cache_write if price.cache_write is not None else price.input)
    return dollars / 1_000_000 * batch_discount


def _user_prices() -> dict[str, Price]:
    path = prices_yaml_path()
    if not path.exists():
        return {}
    stat = path.stat()
    return _load_user_prices(str(path), stat.st_mtime_ns)


@lru_cache(maxsize=2)
def _load_user_prices(path: str, _mtime: int) -> dict[str, Price]:
    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
    except yaml.MarkedYAMLError as e:
        line = e.problem_mark.line + 1 if e.problem_mark else "?"
        raise UsageError(f"{path}:{line}: invalid YAML: {e.problem}") from None
    except (OSError, yaml.YAMLError) as e:
        raise UsageError(f"cannot read {path}: {e}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path} must map model ids to prices")
    prices = {}
    for model, entry in data.items():
        if not isinstance(entry, dict) or not {"input", "output"} <= set(entry):
            raise UsageError(f"{path}: {model!r} needs 'input' and 'output' ($ per M tokens)")
        unknown = set(entry) - set(_FIELDS)
        if unknown:
            raise UsageError(f"{path}: {model!r} has unsupported field {sorted(unknown)[0]!r}")
        try:
            values = {k: float(v) for k, v in entry.items()}
        except (TypeError, ValueError):
            raise UsageError(f"{path}: prices for {model!r} must be numbers") from None
        if not all(0 <= v < math.inf for v in values.values()):
            raise UsageError(f"{path}: prices for {model!r} must be finite and not negative")
        prices[str(model)] = Price(
            input=values["input"],
            output=values["output"],
            cache_read=values.get("cache_read"),
            cache_write=values.get("cache_write"),
            source=str(path),
        )
    return prices


def _is_local(spec: ModelSpec) -> bool:
    """Runs on this machine: GGUF files, the fake, or an OpenAI-compatible server on loopback.

    Anthropic and Gemini pointed at a local proxy still cost what the real API charges.
    """
    if spec.provider in ("local", "echo"):
        return True
    base_url = spec.config.get("base_url")
    return (
        spec.provider == "openai"
        and not spec.config.get("official")
        and bool(base_url)
        and urlsplit(str(base_url)).hostname in _LOCAL_HOSTS
    )


def _genai_lookup(spec: ModelSpec, usage: Usage, batch: bool) -> Any:
    """genai-prices' calculation for ``spec``, or None when it knows no price."""
    import genai_prices

    _install_updated_data()
    provider = GENAI_PROVIDER.get(spec.provider)
    base_url = str(spec.config.get("base_url") or "")
    official = spec.config.get("official", False)
    kwargs: dict[str, Any] = {}
    if provider and (official or spec.provider != "openai"):
        kwargs["provider_id"] = provider
    elif base_url:
        kwargs["provider_api_url"] = base_url
    total_in = usage.input_tokens or 0
    read = min(usage.cached_tokens or 0, total_in)  # genai-prices refuses parts above the total
    genai_usage = genai_prices.Usage(
        input_tokens=total_in,
        cache_read_tokens=read,
        cache_write_tokens=min(usage.cache_write_tokens or 0, total_in - read),
        output_tokens=usage.output_tokens or 0,
    )
    context = {"processing": "batch"} if batch else None
    try:
        return genai_prices.calc_price(
            genai_usage, str(spec.config.get("model") or spec.id), price_context=context, **kwargs
        )
    except LookupError:
        return None
    except Exception as e:  # genai-prices raises ValueError for inconsistent usage, among others
        raise UsageError(f"genai-prices could not price {spec.id}: {e}") from None


def _source(result: Any) -> str:
    import genai_prices

    origin = "updated data" if prices_data_path().exists() else "bundled data"
    version = getattr(genai_prices, "__version__", "")
    return (
        f"genai-prices {version} ({origin}): {result.provider.name} {result.model.name!r}"
    ).replace("  ", " ")


def cost(spec: ModelSpec, usage: Usage, *, batch: bool = False) -> tuple[float | None, str | None]:
    """Dollars for ``usage`` on ``spec``, and the price's source; (None, None) when unknown."""
    own = _user_prices().get(spec.id)
    if own is not None:
        return cost_from_price(own, usage, batch_discount=0.5 if batch else 1.0), own.source
    if _is_local(spec):
        return 0.0, "free: runs on this machine"
    result = _genai_lookup(spec, usage, batch)
    if result is None:
        return None, None
    return float(result.total_price), _source(result)


def price_for(spec: ModelSpec) -> Price | None:
    """The per-million-token price that will be charged for ``spec``, or None if unknown."""
    own = _user_prices().get(spec.id)
    if own is not None:
        return own
    if _is_local(spec):
        return Price(0.0, 0.0, source="free: runs on this machine")
    result = _genai_lookup(spec, Usage(input_tokens=1, output_tokens=1), False)
    if result is None:
        return None
    mp = result.model_price

    def base(value: Any) -> float | None:
        if value is None:
            return None
        return float(getattr(value, "base", value))

    tiers = [v for v in (mp.input_mtok, mp.output_mtok) if hasattr(v, "tiers")]
    note = ""
    if tiers:
        starts = sorted({t.start for v in tiers for t in v.tiers})
        note = f"higher rates above {', '.join(f'{s:,}' for s in starts)} input tokens"
    return Price(
        input=base(mp.input_mtok) or 0.0,
        output=base(mp.output_mtok) or 0.0,
        cache_read=base(mp.cache_read_mtok),
        cache_write=base(getattr(mp, "cache_write_mtok", None)),
        source=_source(result),
        note=note,
    )


_installed: tuple[float, ...] | None = None


def _install_updated_data() -> None:
    """Use ``prices-data.json`` (from ``assay prices update``) when it exists."""
    global _installed
    path = prices_data_path()
    if not path.exists():
        return
    stamp = (path.stat().st_mtime,)
    if _installed == stamp:
        return
    from genai_prices import data_snapshot
    from genai_prices.types import _providers_from_raw

    try:
        providers = _providers_from_raw(json.loads(path.read_text(encoding="utf-8")))
    except Exception as e:  # a bad download must not break pricing
        raise UsageError(
            f"{path} is not valid genai-prices data ({e}); delete it or run "
            "'assay prices update' again"
        ) from None
    data_snapshot.set_custom_snapshot(data_snapshot.DataSnapshot(providers, from_auto_update=True))
    _installed = stamp


def update_prices(url: str = DATA_URL, timeout: float = 30.0) -> int:
    """Download genai-prices' latest data into the user directory; return the provider count."""
    import httpx
    from genai_prices.types import _providers_from_raw

    from .errors import ConnectError

    try:
        resp = httpx.get(url, timeout=timeout, follow_redirects=True)
        resp.raise_for_status()
        raw = resp.json()
        providers = _providers_from_raw(raw)
    except httpx.HTTPError as e:
        raise ConnectError(f"cannot download prices from {url}: {e}") from None
    except Exception as e:
        raise UsageError(f"{url} did not return genai-prices data: {e}") from None
    if not providers:
        raise UsageError(f"{url} returned no providers; keeping the prices you have")
    write_atomic(prices_data_path(), json.dumps(raw))
    return len(providers)
