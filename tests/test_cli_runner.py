"""The in-process CLI runner shows what a terminal would: native writes, warnings, tracebacks, exit codes."""
import logging
import os
import warnings

import pytest

import reszoo.cli
from tests.cli_runner import run_reszoo_here


def _command_doing(monkeypatch, action):
    """`reszoo.cli.main` with its command dispatch replaced by `action(argv)`."""
    monkeypatch.setattr(reszoo.cli, "_run", action)


def test_native_writes_to_the_descriptors_are_captured(monkeypatch):
    def native(argv):
        os.write(1, b"out from C\n")
        os.write(2, b"W0000 noise from C\n")

    _command_doing(monkeypatch, native)
    result = run_reszoo_here("anything")
    assert (result.returncode, result.stdout, result.stderr) == (0, "out from C\n", "W0000 noise from C\n")


def test_an_escaping_exception_is_a_traceback_and_exit_1(monkeypatch):
    def broken(argv):
        raise RuntimeError("a tool's failure")

    _command_doing(monkeypatch, broken)
    result = run_reszoo_here("anything")
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "RuntimeError: a tool's failure" in result.stderr


def test_user_errors_keep_their_exit_code_and_line(monkeypatch):
    from export.core.errors import UserError

    def mistaken(argv):
        raise UserError(f"bad value {argv[0]!r}")

    _command_doing(monkeypatch, mistaken)
    result = run_reszoo_here("x")
    assert (result.returncode, result.stdout, result.stderr) == (2, "", "error: bad value 'x'\n")


def test_warnings_and_logging_show_as_in_a_fresh_process(monkeypatch):
    handler = logging.StreamHandler(os.sys.stderr)
    logger = logging.getLogger("third_party_example")
    logger.addHandler(handler)

    def chatty(argv):
        warnings.warn("shown", UserWarning)
        warnings.warn("hidden", DeprecationWarning)
        logger.warning("logged")

    _command_doing(monkeypatch, chatty)
    try:
        result = run_reszoo_here("anything")
    finally:
        logger.removeHandler(handler)
    assert "UserWarning: shown" in result.stderr and "hidden" not in result.stderr
    assert "logged" in result.stderr


@pytest.mark.parametrize("argv, code", [(["list", "resnet20"], 0), (["no-such-command"], 2)])
def test_real_commands_exit_as_the_console_script_does(argv, code):
    result = run_reszoo_here(*argv)
    assert result.returncode == code, result.stderr
