"""``assay [PROMPT]``: send one prompt and stream the response."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from ._common import echo_json, format_usage, read_stdin

__all__ = ["model_options", "open_conversation", "option_dict", "prompt"]

F = TypeVar("F", bound=Callable[..., Any])


def model_options(fn: F) -> F:
    """The flags every prompting command shares."""
    decorators = [
        click.option("-m", "--model", "model_id", help="Model id or alias (see 'assay models')."),
        click.option("-s", "--system", help="System prompt."),
        click.option(
            "-o",
            "--option",
            "options",
            type=(str, str),
            multiple=True,
            metavar="KEY VALUE",
            help="Model option, e.g. -o temperature 0.",
        ),
        click.option(
            "-c",
            "--continue",
            "continue_",
            is_flag=True,
            help="Continue the most recent conversation.",
        ),
        click.option(
            "--cid", "--conversation", "cid", help="Continue the conversation with this id."
        ),
        click.option("--key", help="API key to use instead of the stored one."),
    ]
    for decorator in reversed(decorators):
        fn = decorator(fn)
    return fn


def open_conversation(
    model_id: str | None,
    continue_: bool,
    cid: str | None,
    key: str | None,
    via_server: bool = False,
) -> tuple[Any, Any]:
    """The model to use and, when continuing, the conversation to continue."""
    from ..api import get_model
    from ..errors import UsageError
    from ..store.logs import log_store

    if continue_ and not cid:
        cid = log_store().latest_conversation_id()
        if cid is None:
            raise UsageError("there is no conversation to continue yet")
    if cid:
        found = log_store().conversation(cid)
        if found is None:
            raise UsageError(f"no conversation with id {cid!r} in the logs")
        model = get_model(model_id or found[0], key=key, via_server=via_server)
        return model, model.conversation(cid)
    return get_model(model_id, key=key, via_server=via_server), None


@click.command()
@click.argument("prompt", required=False)
@model_options
@click.option(
    "-a",
    "--attach",
    "attach",
    multiple=True,
    metavar="PATH|URL|-",
    help="Attach an image, PDF or audio file (type sniffed from its content).",
)
@click.option(
    "--at",
    "attach_typed",
    type=(str, str),
    multiple=True,
    metavar="PATH TYPE",
    help="Attach a file with an explicit MIME type, e.g. --at scan.bin image/png.",
)
@click.option("--no-stream", is_flag=True, help="Wait for the whole response, then print it.")
@click.option(
    "--no-server",
    is_flag=True,
    help="Load a local model in-process even when 'assay serve' is running.",
)
@click.option("-n", "--no-log", is_flag=True, help="Do not log this prompt and response.")
@click.option("--json", "as_json", is_flag=True, help="Print the response and its metrics as JSON.")
@click.option("-u", "--usage", "show_usage", is_flag=True, help="Print token usage to stderr.")
def prompt(
    prompt: str | None,
    model_id: str | None,
    system: str | None,
    options: tuple[tuple[str, str], ...],
    continue_: bool,
    cid: str | None,
    key: str | None,
    attach: tuple[str, ...],
    attach_typed: tuple[tuple[str, str], ...],
    no_stream: bool,
    no_server: bool,
    no_log: bool,
    as_json: bool,
    show_usage: bool,
) -> None:
    """Send a prompt to a model and stream the response.

    The prompt comes from the argument, from stdin, or both (stdin first):
    cat notes.txt | assay 'summarise'. Put -- before a prompt that starts with
    a dash or is a command name: assay -- logs.
    """
    from ..attachments import Attachment
    from ..errors import UsageError

    from_stdin = list(attach).count("-") + sum(path == "-" for path, _ in attach_typed)
    if from_stdin > 1:
        raise UsageError("stdin can hold only one attachment: give '-' once")
    stdin_is_attachment = from_stdin == 1
    attachments = [Attachment.from_arg(a) for a in attach]
    attachments += [Attachment.from_arg(path, kind) for path, kind in attach_typed]
    piped = "" if stdin_is_attachment else read_stdin()
    text = "\n\n".join(part for part in (piped.strip("\n"), prompt) if part)
    if not text and not attachments:
        raise UsageError("no prompt given: pass one as an argument or on stdin")
    # A running `assay serve` keeps local models warm and logs the call itself.
    via_server = not (no_server or no_log)
    model, conversation = open_conversation(model_id, continue_, cid, key, via_server)
    response = model.prompt(
        text,
        system=system,
        attachments=attachments,
        stream=not no_stream,
        log=not no_log,
        conversation=conversation,
        **option_dict(options),
    )
    if as_json:
        echo_json(response.json())
    elif no_stream:
        click.echo(response.text())
    else:
        for piece in response:
            click.echo(piece, nl=False)
        click.echo()
    if show_usage:
        click.echo(format_usage(response.usage.to_dict(), response.cost), err=True)


def option_dict(options: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, value in options:
        if name in result:  # repeated options (stop) accumulate
            previous = result[name]
            result[name] = [*(previous if isinstance(previous, list) else [previous]), value]
        else:
            result[name] = value
    return result
