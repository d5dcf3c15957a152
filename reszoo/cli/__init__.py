"""The `reszoo` command line: a click group whose commands live one per module (loaded lazily).

User mistakes (`UserError`, bad click usage) print one line and exit 2, with no traceback.

Example:
    $ reszoo list 'resnet5*'
    $ reszoo export resnet20 --format tflite --precision int8 --data digits
"""
import importlib
import os
import signal
import sys

import click

from export.core.errors import UserError

ZOO = "reszoo.models"  # TF imported quietly; every model name and the layer of older reszoo .keras files
# (ZeroPadShortcut) registered

# command name -> ("module:attribute", whether it needs the ZOO imported before it runs); each module defines one
# click command. `list` and `info` read data (the zoo table, the presets; `info --features` builds a model through
# the zoo itself) and `cpus` sets up emulators: they start without TensorFlow.
COMMANDS = {
    "list": ("reszoo.cli.zoo:list_command", False),
    "info": ("reszoo.cli.zoo:info_command", False),
    "train": ("reszoo.cli.train_cmd:train_command", True),
    "bench": ("reszoo.cli.bench_cmd:bench_command", True),
    "bench-input": ("reszoo.cli.bench_input_cmd:bench_input_command", True),
    "diagnose": ("reszoo.cli.diagnose_cmd:diagnose_command", True),
    "export": ("reszoo.cli.export_cmd:export_command", True),
    "import": ("reszoo.cli.import_cmd:import_command", True),
    "data": ("reszoo.cli.data_cmd:data_command", True),
    "verify": ("reszoo.cli.verify_cmd:verify_command", True),
    "predict": ("reszoo.cli.predict_cmd:predict_command", True),
    "cpus": ("reszoo.cli.cpus_cmd:cpus_command", False),
}


class LazyGroup(click.Group):
    """A click group that imports a command's module only when that command runs (keeps --help fast)."""

    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module_name, attribute = COMMANDS[name][0].split(":")
        return getattr(importlib.import_module(module_name), attribute)


def _version():
    from importlib.metadata import version

    return version("reszoo")


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(_version(), prog_name="reszoo")
def cli():
    """reszoo: residual-network model zoo and edge-export toolkit."""


def needs_zoo(args):
    """True when `args` run a command that needs the ZOO (COMMANDS); False for --help, --version and the
    commands that read data. The command is the first word: the group itself takes no option with a value.

    Example:
        >>> needs_zoo(["export", "resnet20"]), needs_zoo(["list", "export"]), needs_zoo(["export", "--help"])
        (True, False, False)
    """
    command = next((arg for arg in args if not arg.startswith("-")), None)
    return COMMANDS.get(command, (None, False))[1] and not {"-h", "--help"} & set(args)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so every `finally` (partial-output cleanup) runs before the process ends."""


def _raise_terminated(signum, frame):
    raise Terminated()


EXIT_INTERRUPTED = {Terminated: (143, "terminated"), KeyboardInterrupt: (130, "aborted")}


def interrupt_in(error):
    """The Ctrl-C / SIGTERM interrupt that `error` is or was caused by (its cause/context chain), else None:
    click wraps it in Abort, and a native module whose import it cut short raises pybind11's
    ImportError("initialization failed") from it.

    Example:
        >>> try:
        ...     raise ImportError("initialization failed") from KeyboardInterrupt()
        ... except ImportError as error:
        ...     type(interrupt_in(error)).__name__
        'KeyboardInterrupt'
    """
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, KeyboardInterrupt):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def _interrupted(error):
    """(exit code, word) for Ctrl-C or SIGTERM, also when wrapped (`interrupt_in`)."""
    return EXIT_INTERRUPTED[Terminated if isinstance(interrupt_in(error), Terminated) else KeyboardInterrupt]


def _exit_interrupted(error):
    code, word = _interrupted(error)
    click.echo(word, err=True)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # cleanup already ran; skip finalizing a TensorFlow whose import may have been cut short


def os_error_line(error):
    """One line for an OSError on a user's path: the path and the OS reason (no traceback).

    Example:
        >>> os_error_line(PermissionError(13, "Permission denied", "/ro/out"))
        "cannot write or read '/ro/out': Permission denied"
    """
    path = error.filename if error.filename is not None else "a file"
    if isinstance(error, (FileExistsError, NotADirectoryError)) and os.path.isfile(path):
        return f"cannot write into {path!r}: it is a file, not a folder"
    other = f" -> {error.filename2!r}" if getattr(error, "filename2", None) else ""
    return f"cannot write or read {path!r}{other}: {error.strerror or error}"


TF_FILE_ERRORS = ("PermissionDeniedError", "NotFoundError", "AlreadyExistsError")  # TF's OSError equivalents


def tf_file_error_line(error):
    """One line for TensorFlow's file errors (PermissionDenied, NotFound, AlreadyExists), or None for others.

    Example:
        >>> class NotFoundError(Exception): message = "{{function_node f}} runs/x; No such file [Op:Save]"
        >>> tf_file_error_line(NotFoundError())
        'runs/x; No such file'
    """
    if not any(cls.__name__ in TF_FILE_ERRORS for cls in type(error).__mro__):
        return None
    from reszoo.errors import tensorflow_message

    return tensorflow_message(getattr(error, "message", error))


def _run(argv):
    if needs_zoo(sys.argv[1:] if argv is None else list(argv)):
        importlib.import_module(ZOO)  # for every command that needs it, in one place
    return cli.main(args=argv, prog_name="reszoo", standalone_mode=False)


def main(argv=None):
    """Entry point of the `reszoo` console script: one error boundary for every command.

    User errors (`UserError`, bad usage) and OS errors on the user's paths (read-only folder, disk full, a
    file where a folder should be) print one line and exit 2; Ctrl-C exits 130 and SIGTERM 143, both after
    the running command's cleanup.
    """
    signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        return _run(argv)
    except UserError as error:
        _fail(f"error: {error}", 2)
    except OSError as error:
        _fail(f"error: {os_error_line(error)}", 2)
    except (KeyboardInterrupt, click.exceptions.Abort) as error:
        _exit_interrupted(error)
    except click.exceptions.Exit as done:
        sys.exit(done.exit_code)
    except click.ClickException as error:
        _fail(f"error: {error.format_message()}", 2)
    except Exception as error:
        if interrupt_in(error) is not None:  # Ctrl-C while TensorFlow's native modules were importing
            _exit_interrupted(error)
        line = tf_file_error_line(error)
        if line is None:
            raise
        _fail(f"error: {line}", 2)


def _fail(line, code):
    click.echo(line, err=True)
    sys.exit(code)
