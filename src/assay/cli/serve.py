"""``assay serve``: run the OpenAI-compatible server, or say what is running."""

from __future__ import annotations

import os

import click

from ._common import echo_json

__all__ = ["serve"]


@click.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Interface to listen on; anything but loopback needs --api-key.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8080,
    show_default=True,
    help="Port to listen on (0 picks a free one).",
)
@click.option(
    "--api-key",
    envvar="ASSAY_SERVE_API_KEY",
    help="Require 'Authorization: Bearer KEY' (env: ASSAY_SERVE_API_KEY).",
)
@click.option(
    "--keep-alive",
    type=click.FloatRange(min=1),
    default=300,
    show_default=True,
    help="Seconds an idle local model stays loaded.",
)
@click.option(
    "--max-body",
    type=click.IntRange(min=1024),
    default=32 * 1024 * 1024,
    show_default=True,
    help="Largest request body accepted, in bytes.",
)
@click.option(
    "--status",
    "show_status",
    is_flag=True,
    help="Say what is running and loaded, then exit (1 if nothing is running).",
)
@click.option("--json", "as_json", is_flag=True, help="With --status: print JSON.")
def serve(
    host: str,
    port: int,
    api_key: str | None,
    keep_alive: float,
    max_body: int,
    show_status: bool,
    as_json: bool,
) -> None:
    """Serve models over an OpenAI-compatible API, logging and pricing every call.

    Point any OpenAI client at http://127.0.0.1:8080/v1. Local models stay loaded
    between requests, and 'assay -m smollm2 ...' uses the running server by itself.
    """
    from ..server import run, server_status

    if show_status:
        status = server_status(api_key or os.environ.get("ASSAY_SERVE_API_KEY"))
        if status is None:
            click.echo("assay serve is not running")
            raise SystemExit(1)
        if as_json:
            echo_json(status)
            return
        click.echo(
            f"assay serve at {status['url']}/v1 (pid {status['pid']}), up "
            f"{status['uptime_s']:.0f} s, {status['requests']} requests, "
            f"{status['in_flight']} in flight"
        )
        loaded = status["loaded"]
        click.echo(
            "loaded: "
            + (
                ", ".join(
                    f"{os.path.basename(m['path'])} (idle {m['idle_s']:.0f} s)" for m in loaded
                )
                if loaded
                else "nothing"
            )
        )
        return
    run(host, port, api_key, keep_alive, max_body)
