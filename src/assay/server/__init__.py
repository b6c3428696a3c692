"""``assay serve``: an OpenAI-compatible server over assay's models, logging every call."""

from .runtime import ServerInfo, run, running_server, server_status

__all__ = ["ServerInfo", "run", "running_server", "server_status"]
