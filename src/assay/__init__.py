"""assay: prompt any model, log every response, and measure instead of guess.

The public API is re-exported here and loaded lazily, so that ``import assay``
(and ``assay --help``) stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "AsyncConversation": "api",
    "AsyncModel": "api",
    "AsyncResponse": "api",
    "Call": "api",
    "Conversation": "api",
    "Model": "api",
    "Response": "api",
    "get_async_model": "api",
    "get_model": "api",
    "AssayError": "errors",
    "MissingKeyError": "errors",
    "OptionError": "errors",
    "ProviderError": "errors",
    "UnknownModelError": "errors",
    "Backend": "providers.base",
    "Provider": "providers.base",
    "Option": "options",
    "Final": "types",
    "Message": "types",
    "ModelSpec": "types",
    "Request": "types",
    "Usage": "types",
    "LogStore": "store",
    "all_models": "registry",
    "user_dir": "settings",
}

__all__ = [
    "AssayError",
    "AsyncConversation",
    "AsyncModel",
    "AsyncResponse",
    "Backend",
    "Call",
    "Conversation",
    "Final",
    "LogStore",
    "Message",
    "MissingKeyError",
    "Model",
    "ModelSpec",
    "Option",
    "OptionError",
    "Provider",
    "ProviderError",
    "Request",
    "Response",
    "UnknownModelError",
    "Usage",
    "__version__",
    "all_models",
    "get_async_model",
    "get_model",
    "user_dir",
]

if TYPE_CHECKING:
    from .api import (
        AsyncConversation,
        AsyncModel,
        AsyncResponse,
        Call,
        Conversation,
        Model,
        Response,
        get_async_model,
        get_model,
    )
    from .errors import AssayError, MissingKeyError, OptionError, ProviderError, UnknownModelError
    from .options import Option
    from .providers.base import Backend, Provider
    from .registry import all_models
    from .settings import user_dir
    from .store import LogStore
    from .types import Final, Message, ModelSpec, Request, Usage


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'assay' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
