"""Built-in providers. Each is registered through the ``assay.providers`` entry-point group,
exactly as a third-party package would register its own."""

from .base import Backend, Provider

__all__ = ["Backend", "Provider"]
