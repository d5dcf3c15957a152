"""The `reszoo` command line: a click group whose commands live one per module (loaded lazily).

User mistakes (`UserError`, bad click usage) print one line and exit 2, with no traceback.

Example:
    $ reszoo list 'resnet5*'
    $ reszoo export resnet20 --format tflite --precision int8 --data digits
"""
import importlib
import sys

import click

from export.errors import UserError
from reszoo.cli.quiet import import_tensorflow_quietly

# command name -> "module:attribute"; each module defines one click command.
COMMANDS = {
    "list": "reszoo.cli.zoo:list_command",
    "info": "reszoo.cli.zoo:info_command",
    "train": "reszoo.cli.train_cmd:train_command",
    "bench": "reszoo.cli.bench_cmd:bench_command",
    "diagnose": "reszoo.cli.diagnose_cmd:diagnose_command",
    "export": "reszoo.cli.export_cmd:export_command",
    "verify": "reszoo.cli.verify_cmd:verify_command",
}


class LazyGroup(click.Group):
    """A click group that imports a command's module only when that command runs (keeps --help fast)."""

    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module_name, attribute = COMMANDS[name].split(":")
        return getattr(importlib.import_module(module_name), attribute)


def _version():
    from importlib.metadata import version

    return version("reszoo")


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(_version(), prog_name="reszoo")
def cli():
    """reszoo: residual-network model zoo and edge-export toolkit."""


def _runs_a_command(argv):
    """True when argv names a command to run (not just --help/--version), so TF will be needed."""
    args = sys.argv[1:] if argv is None else list(argv)
    return any(a in COMMANDS for a in args) and not {"-h", "--help"} & set(args)


def main(argv=None):
    """Entry point of the `reszoo` console script; maps user errors to one line and exit code 2."""
    if _runs_a_command(argv):
        import_tensorflow_quietly()
    try:
        return cli.main(args=argv, prog_name="reszoo", standalone_mode=False)
    except UserError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.exceptions.Exit as done:
        sys.exit(done.exit_code)
    except click.ClickException as error:
        click.echo(f"error: {error.format_message()}", err=True)
        sys.exit(2)
