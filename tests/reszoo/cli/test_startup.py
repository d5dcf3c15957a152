"""`reszoo --help`, every `reszoo COMMAND --help`, `--version`, `list` (and its options) and `info` start without
TensorFlow or Keras: each runs the CLI entry point in a fresh interpreter, then lists the modules it loaded."""
import json
import pathlib
import subprocess
import sys

import pytest

from reszoo.cli import COMMANDS

ROOT = pathlib.Path(__file__).resolve().parents[3]
HEAVY = ("tensorflow", "keras", "tf_keras")
PROBE = """
import json, sys
from reszoo.cli import main
try:
    main({args!r})
    code = 0
except SystemExit as done:
    code = done.code
heavy = sorted(name for name in sys.modules if name.split(".")[0] in {heavy!r})
print("PROBE " + json.dumps({{"code": code, "heavy": heavy}}))
"""
LIGHT_RUNS = [["--help"], ["--version"], *([name, "--help"] for name in sorted(COMMANDS)), ["list"],
              ["list", "resnet5*"], ["list", "--pretrained"], ["list", "--pretrained", "resnet5*"],
              ["info", "resnet50"]]


def probe(args):
    """(exit code, loaded TensorFlow/Keras modules, stdout) of `reszoo ARGS` run by `reszoo.cli.main`."""
    done = subprocess.run([sys.executable, "-c", PROBE.format(args=args, heavy=HEAVY)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    lines = done.stdout.splitlines()
    assert lines and lines[-1].startswith("PROBE "), done.stderr[-3000:]
    result = json.loads(lines[-1].removeprefix("PROBE "))
    return result["code"], result["heavy"], "\n".join(lines[:-1])


@pytest.mark.parametrize("args", LIGHT_RUNS, ids=" ".join)
def test_starts_without_tensorflow(args):
    code, heavy, output = probe(args)
    assert code == 0 and output.strip(), output
    assert not heavy, f"reszoo {' '.join(args)} imported {heavy}"  # tensorflow, keras, tf_keras and their modules


def test_a_command_that_needs_the_zoo_still_gets_it():
    """The counter-check: the probe does see TensorFlow when a command imports the zoo (`info --features`)."""
    code, heavy, output = probe(["info", "resnet20", "--features"])
    assert code == 0 and "stage3: stride 4" in output
    assert "tensorflow" in heavy and "keras" in heavy
