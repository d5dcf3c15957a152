"""Shared test set-up: quiet TF, fixed seeds, and a CLI runner that goes through `reszoo.cli.main`."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import subprocess  # noqa: E402
import sys  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture
def run_cli():
    """Run `reszoo ARGS...` in a subprocess (as users do); returns CompletedProcess with text output."""

    def run(*args, cwd=None, timeout=900):
        return subprocess.run([sys.executable, "-m", "reszoo", *map(str, args)], capture_output=True, text=True,
                              cwd=cwd, timeout=timeout)

    return run

