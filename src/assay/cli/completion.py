"""``assay completion SHELL``: print a shell completion script."""

from __future__ import annotations

import click

__all__ = ["completion"]


@click.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script.

    \b
    bash:  eval "$(assay completion bash)"      (add to ~/.bashrc)
    zsh:   eval "$(assay completion zsh)"       (add to ~/.zshrc)
    fish:  assay completion fish > ~/.config/fish/completions/assay.fish
    """
    from click.shell_completion import get_completion_class

    from . import cli

    cls = get_completion_class(shell)
    assert cls is not None
    click.echo(cls(cli, {}, "assay", "_ASSAY_COMPLETE").source())
