"""Preemption: a SIGTERM (to one of two workers too) checkpoints every worker at the same step and exits 42; the
same command relaunched resumes there, and the finished run equals an uninterrupted one."""
import json
import os
import re
import signal
import subprocess
import sys

import numpy as np

from reszoo.train.preemption import MARKER_FILE, PREEMPTED_EXIT
from tests.reszoo.train.test_strategies import free_ports

TRAIN = ["train", "resnet20", "--data", "digits", "--width", "4", "--image-size", "16", "--epochs", "2",
         "--steps-per-epoch", "12", "--batch-size", "8", "--augment", "none"]
ANNOUNCED = "preemption:"


def start(run_dir, extra=(), tf_config=None):
    env = {key: value for key, value in os.environ.items() if key != "TF_CONFIG"}
    if tf_config:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return subprocess.Popen([sys.executable, "-m", "reszoo", *TRAIN, *extra, "--output", str(run_dir)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def wait_for_announcement(process):
    """Read a worker's stdout until its training (with its SIGTERM handler) has started."""
    for line in process.stdout:
        if line.startswith(ANNOUNCED):
            return
    raise AssertionError(f"training never started: {process.stderr.read()[-3000:]}")


def finish(process):
    stdout, stderr = process.communicate(timeout=600)
    return process.returncode, stdout, stderr


def saved_step(stderr):
    found = re.search(r"checkpoint saved at step (\d+)", stderr)
    assert found, stderr[-3000:]
    return int(found.group(1))


def final_weights(run_dir):
    import keras

    return keras.saving.load_model(run_dir / "final.keras", safe_mode=True).get_weights()


def assert_same_weights(first, second):
    assert len(first) == len(second)
    for a, b in zip(first, second):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_sigterm_checkpoints_exits_42_and_the_same_command_resumes(tmp_path):
    run = start(tmp_path / "run")
    wait_for_announcement(run)
    run.send_signal(signal.SIGTERM)
    code, _, stderr = finish(run)
    assert code == PREEMPTED_EXIT, stderr[-3000:]
    step = saved_step(stderr)
    assert 1 <= step < 24 and json.loads((tmp_path / "run" / MARKER_FILE).read_text()) == {"step": step}
    code, stdout, stderr = finish(start(tmp_path / "run"))  # the same command, no --resume
    assert code == 0, stderr[-3000:]
    assert f"preempted at step {step}: resuming" in stdout and not (tmp_path / "run" / MARKER_FILE).exists()
    assert len(json.loads((tmp_path / "run" / "history.json").read_text())) == 2
    code, _, stderr = finish(start(tmp_path / "whole"))
    assert code == 0, stderr[-3000:]
    assert_same_weights(final_weights(tmp_path / "run"), final_weights(tmp_path / "whole"))


def start_workers(run_dir):
    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    return [start(run_dir, ["--strategy", "multi-worker"],
                  {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}) for index in range(2)]


def test_sigterm_to_one_of_two_workers_stops_both_at_the_same_step(tmp_path):
    chief, other = start_workers(tmp_path / "run")
    wait_for_announcement(other)
    other.send_signal(signal.SIGTERM)  # only the non-chief worker is told
    results = [finish(process) for process in (chief, other)]
    assert [code for code, _, _ in results] == [PREEMPTED_EXIT] * 2, [r[2][-2000:] for r in results]
    steps = {saved_step(stderr) for _, _, stderr in results}
    assert len(steps) == 1, steps  # both workers checkpointed after the same step
    resumed = [finish(process) for process in start_workers(tmp_path / "run")]
    assert [code for code, _, _ in resumed] == [0, 0], [r[2][-2000:] for r in resumed]
    whole = [finish(process) for process in start_workers(tmp_path / "whole")]
    assert [code for code, _, _ in whole] == [0, 0], [r[2][-2000:] for r in whole]
    assert_same_weights(final_weights(tmp_path / "run"), final_weights(tmp_path / "whole"))
