"""`reszoo ARGS...` run inside the test process, seen as a terminal would see it.

A subprocess per CLI test pays TensorFlow's start-up (~8 s of CPU) each time; the tests of what a command
prints and returns do not need it. `run_reszoo_here` calls the console script's entry point (`reszoo.cli.main`)
and captures what a subprocess would show:

- Python-level stdout/stderr (click, rich), and whatever native code writes to file descriptors 1 and 2
  during the command (TensorFlow's C++ logs, LiteRT's INFO lines): both descriptors point at temp files;
- Python warnings under the interpreter's default filters (a fresh process shows each once), and Python
  logging handlers that write to the terminal streams;
- an exception that escapes `main` as the interpreter prints it: its traceback on stderr, exit code 1.

What stays a subprocess test (`tests.helpers.run_reszoo`): start-up itself (TensorFlow's import noise, `--help`
without TensorFlow), signals and interrupts (`os._exit`), and environment variables read at import time.

Example:
    >>> result = run_reszoo_here("list", "resnet20")
    >>> result.returncode, "resnet20" in result.stdout
    (0, True)
"""
import contextlib
import ctypes
import io
import logging
import os
import signal
import subprocess
import sys
import tempfile
import traceback
import warnings

DESCRIPTORS = (1, 2)  # stdout, stderr
# what a fresh interpreter ignores (sys.warnoptions empty, not -X dev); everything else is shown once
DEFAULT_IGNORED_WARNINGS = (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning)


def _flush_c_streams():
    """Flush libc's stdio buffers, so native printf output lands in the descriptor it was written for."""
    ctypes.CDLL(None).fflush(None)


@contextlib.contextmanager
def _descriptors_to_files():
    """Descriptors 1 and 2 point at temp files for the block; yields {descriptor: file}."""
    sys.stdout.flush()
    sys.stderr.flush()
    _flush_c_streams()
    saved = {fd: os.dup(fd) for fd in DESCRIPTORS}
    files = {fd: tempfile.TemporaryFile() for fd in DESCRIPTORS}
    try:
        for fd, handle in files.items():
            os.dup2(handle.fileno(), fd)
        yield files
    finally:
        _flush_c_streams()
        for fd in DESCRIPTORS:
            os.dup2(saved[fd], fd)
            os.close(saved[fd])


def _read(handle):
    handle.seek(0)
    text = handle.read().decode("utf-8", "replace")
    handle.close()
    return text


@contextlib.contextmanager
def _logging_to(stdout, stderr):
    """Logging handlers that write to the process's stdout/stderr (the original streams or the ones in place
    now) write to `stdout`/`stderr` for the block."""
    terminal = {id(sys.__stdout__): stdout, id(sys.__stderr__): stderr, id(sys.stdout): stdout,
                id(sys.stderr): stderr}
    loggers = [logging.getLogger(), *[item for item in logging.Logger.manager.loggerDict.values()
                                     if isinstance(item, logging.Logger)]]
    moved = [(handler, handler.stream) for logger in loggers for handler in logger.handlers
             if type(handler) is logging.StreamHandler and id(handler.stream) in terminal]
    for handler, stream in moved:
        handler.setStream(terminal[id(stream)])
    try:
        yield
    finally:
        for handler, stream in moved:
            handler.setStream(stream)


@contextlib.contextmanager
def _environment(added):
    """`added` set in os.environ for the block (variables read while the command runs, not at import)."""
    before = {name: os.environ.get(name) for name in added or {}}
    os.environ.update(added or {})
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def _working_directory(path):
    before = os.getcwd()
    if path is not None:
        os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def _exit_code(exit_):
    """The process exit status `sys.exit(code)` gives (a message string prints and exits 1)."""
    if exit_.code is None or isinstance(exit_.code, int):
        return exit_.code or 0
    print(exit_.code, file=sys.stderr)
    return 1


def _call_main(argv):
    """main(argv)'s exit status; an escaping exception prints its traceback to sys.stderr and gives 1."""
    from reszoo.cli import main

    try:
        main(argv)
    except SystemExit as exit_:
        return _exit_code(exit_)
    except BaseException:  # what the interpreter does with an uncaught exception
        traceback.print_exc()
        return 1
    return 0


def _shown_warnings(caught):
    return "".join(warnings.formatwarning(w.message, w.category, w.filename, w.lineno, w.line) for w in caught)


def run_reszoo_here(*args, cwd=None, env=None):
    """Run `reszoo ARGS...` in this process (see the module docstring), `env` added to os.environ meanwhile:
    a CompletedProcess with text output."""
    argv = list(map(str, args))
    stdout, stderr = io.StringIO(), io.StringIO()
    sigterm = signal.getsignal(signal.SIGTERM)  # main() installs its own handler
    try:
        with _working_directory(cwd), _environment(env), _descriptors_to_files() as native, \
                warnings.catch_warnings(record=True) as caught:
            warnings.resetwarnings()
            for category in DEFAULT_IGNORED_WARNINGS:
                warnings.simplefilter("ignore", category)
            with _logging_to(stdout, stderr), contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
                code = _call_main(argv)
    finally:
        signal.signal(signal.SIGTERM, sigterm)
    out = stdout.getvalue() + _read(native[1])
    err = stderr.getvalue() + _shown_warnings(caught) + _read(native[2])
    return subprocess.CompletedProcess(["reszoo", *argv], code, out, err)
