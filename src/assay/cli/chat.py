"""``assay chat``: an interactive session with the model kept loaded."""

from __future__ import annotations

import click

from ..errors import AssayError
from .prompt import model_options, open_conversation, option_dict

__all__ = ["chat"]

HELP = """Type a message and press Enter. Commands:
  !multi   start a multi-line message; finish it with !end on a line of its own
  !help    show this help
  exit     leave (so do quit and Ctrl-D)"""


def _read_message() -> str | None:
    """One message from the terminal; None at end of input."""
    try:
        line = input("> ")
    except EOFError:
        return None
    if line.strip() != "!multi":
        return line
    lines: list[str] = []
    while True:
        try:
            more = input("… ")
        except EOFError:
            break
        if more.strip() == "!end":
            break
        lines.append(more)
    return "\n".join(lines)


@click.command()
@model_options
@click.option("-n", "--no-log", is_flag=True, help="Do not log the conversation.")
def chat(
    model_id: str | None,
    system: str | None,
    options: tuple[tuple[str, str], ...],
    continue_: bool,
    cid: str | None,
    key: str | None,
    no_log: bool,
) -> None:
    """Chat interactively with a model kept loaded in memory.

    Multi-line input: type !multi, then the lines, then !end.
    """
    model, conversation = open_conversation(model_id, continue_, cid, key)
    conversation = conversation or model.conversation()
    opts = option_dict(options)
    model.async_model.options(opts)  # reject bad options before the first message
    click.echo(f"Chatting with {model.id}. Type !help for help, exit or Ctrl-D to leave.")
    while True:
        message = _read_message()
        if message is None or message.strip() in ("exit", "quit"):
            break
        if message.strip() == "!help":
            click.echo(HELP)
            continue
        if not message.strip():
            continue
        try:
            response = conversation.prompt(message, system=system, log=not no_log, **opts)
            for piece in response:
                click.echo(piece, nl=False)
            click.echo()
        except AssayError as e:  # one failed turn does not end the chat
            click.echo(f"assay: error: {e}", err=True)
        except KeyboardInterrupt:
            click.echo("\n(interrupted)", err=True)
