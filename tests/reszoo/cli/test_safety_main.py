"""The CLI's one error boundary: OS errors on outputs, Ctrl-C and SIGTERM end in one line and leave nothing."""
import os
import signal
import subprocess
import sys
import time

from tests.helpers import assert_one_line_user_error, partial_leftovers, tree_sha256

EXPORT = ("export", "--format", "tflite", "--precision", "fp32", "--data", "digits", "--latency-runs", "0",
          "--verify-samples", "20")


def start(args, cwd):
    """`reszoo ARGS` as a child with Ctrl-C handled as in a terminal (not ignored as in background shells)."""
    return subprocess.Popen([sys.executable, "-m", "reszoo", *map(str, args)], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def wait_for(predicate, timeout=300):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_output_under_a_file_is_one_line_exit_2(run_cli, tmp_path):
    (tmp_path / "afile").write_text("user data")
    before = tree_sha256(tmp_path)
    result = run_cli(*EXPORT, "--output", tmp_path / "afile" / "out", cwd=tmp_path)
    assert_one_line_user_error(result, "afile")
    assert tree_sha256(tmp_path) == before and not partial_leftovers(tmp_path)


def test_ctrl_c_during_start_up_is_one_line_exit_130(tmp_path):
    child = start(EXPORT + ("--output", "out"), tmp_path)
    time.sleep(2.0)  # past interpreter start-up, while TensorFlow (seconds) is being imported
    child.send_signal(signal.SIGINT)
    _, stderr = child.communicate(timeout=120)
    assert child.returncode == 130 and stderr.strip() == "aborted", stderr[-2000:]
    assert os.listdir(tmp_path) == []


def test_sigterm_during_export_removes_the_partial_output(tmp_path):
    child = start(EXPORT + ("--output", "out"), tmp_path)
    wait_for(lambda: partial_leftovers(tmp_path) or child.poll() is not None)
    child.send_signal(signal.SIGTERM)
    _, stderr = child.communicate(timeout=120)
    assert child.returncode == 143 and stderr.strip().splitlines()[-1] == "terminated", stderr[-2000:]
    assert "Traceback" not in stderr
    assert os.listdir(tmp_path) == []


def test_an_import_cut_short_by_ctrl_c_or_sigterm_counts_as_the_interrupt():
    """Ctrl-C while a native module initializes surfaces as pybind11's ImportError("initialization failed") raised
    from the KeyboardInterrupt: the CLI boundary must end it as the interrupt (one word, 130/143), not a traceback."""
    from reszoo.cli import Terminated, _interrupted, interrupt_in

    def raised(error, cause):
        try:
            raise error from cause
        except Exception as caught:  # noqa: BLE001 - the chained error is what the boundary sees
            return caught

    assert _interrupted(raised(ImportError("initialization failed"), KeyboardInterrupt())) == (130, "aborted")
    assert _interrupted(raised(ImportError("initialization failed"), Terminated())) == (143, "terminated")
    assert interrupt_in(raised(ImportError("initialization failed"), ValueError())) is None
