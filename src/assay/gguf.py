"""Read the few GGUF header fields assay needs, without loading the model.

Used to validate a file before ``llama_cpp`` sees it (a corrupt file should be a
clear error, not a crash in C) and to show context lengths in ``assay models``.
Reading stops as soon as the wanted keys are found, so it costs microseconds.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any, BinaryIO

from .errors import ModelLoadError

__all__ = ["read_metadata"]

_SCALARS = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_STRING, _ARRAY = 8, 9


def _read(f: BinaryIO, fmt: str) -> Any:
    size = struct.calcsize(fmt)
    raw = f.read(size)
    if len(raw) != size:
        raise ValueError("truncated header")
    return struct.unpack(fmt, raw)[0]


def _string(f: BinaryIO) -> str:
    length = _read(f, "<Q")
    if length > 1 << 24:
        raise ValueError("implausible string length")
    raw = f.read(length)
    if len(raw) != length:
        raise ValueError("truncated header")
    return raw.decode("utf-8", "replace")


def _value(f: BinaryIO, kind: int) -> Any:
    if kind in _SCALARS:
        return _read(f, _SCALARS[kind])
    if kind == _STRING:
        return _string(f)
    if kind == _ARRAY:
        inner, count = _read(f, "<I"), _read(f, "<Q")
        if inner in _SCALARS:
            f.seek(struct.calcsize(_SCALARS[inner]) * count, 1)
        else:
            for _ in range(count):
                _value(f, inner)
        return None  # arrays are skipped
    raise ValueError(f"unknown value type {kind}")


def read_metadata(path: Path, wanted: tuple[str, ...] = ("context_length",)) -> dict[str, Any]:
    """Scalar metadata up to the first key ending in each of ``wanted`` (or the whole header)."""
    try:
        with open(path, "rb") as f:
            if f.read(4) != b"GGUF":
                raise ModelLoadError(f"{path} is not a GGUF file (bad magic number)")
            version = _read(f, "<I")
            if version not in (2, 3):
                raise ModelLoadError(f"{path}: unsupported GGUF version {version}")
            _tensors, count = _read(f, "<Q"), _read(f, "<Q")
            meta: dict[str, Any] = {}
            missing = set(wanted)
            for _ in range(count):
                key = _string(f)
                meta[key] = _value(f, _read(f, "<I"))
                missing = {w for w in missing if not key.endswith("." + w)}
                if not missing:
                    break
            return meta
    except OSError as e:
        raise ModelLoadError(f"cannot read model file {path}: {e.strerror or e}") from None
    except (ValueError, struct.error, UnicodeError) as e:
        raise ModelLoadError(f"{path} is not a valid GGUF file: {e}") from None
