"""Resumable training: SIGKILL a run after a checkpoint, resume it, reach the same final step; corrupt dirs fail."""
import json
import os
import signal
import subprocess
import sys
import time

EPOCHS, STEPS_PER_EPOCH, EVERY = 3, 20, 5
TRAIN_ARGS = ["train", "resnet20", "--data", "digits", "--width", "4", "--batch-size", "16", "--epochs", EPOCHS,
              "--steps-per-epoch", STEPS_PER_EPOCH, "--checkpoint-every", EVERY]


def checkpoint_steps(folder):
    folder = os.path.join(folder, "checkpoints")
    names = os.listdir(folder) if os.path.isdir(folder) else []
    return sorted(int(n[len("ckpt-"):-len(".index")]) for n in names if n.endswith(".index"))


def kill_after_first_checkpoint(output):
    process = subprocess.Popen([sys.executable, "-m", "reszoo", *map(str, TRAIN_ARGS), "--output", output],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while not checkpoint_steps(output) and process.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    return process.wait()


def test_killed_run_resumes_to_the_same_final_step(tmp_path, run_cli):
    output = str(tmp_path / "run")
    assert kill_after_first_checkpoint(output) == -signal.SIGKILL
    saved = checkpoint_steps(output)
    assert saved and saved[-1] < EPOCHS * STEPS_PER_EPOCH and not os.path.exists(os.path.join(output, "final.keras"))

    done = run_cli(*TRAIN_ARGS, "--output", output, "--resume")
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"resuming at step {saved[-1]}" in done.stdout
    with open(os.path.join(output, "history.json")) as handle:
        history = json.load(handle)
    assert [h["epoch"] for h in history] == list(range(1, EPOCHS + 1))
    assert history[-1]["step"] == EPOCHS * STEPS_PER_EPOCH
    assert checkpoint_steps(output)[-1] == EPOCHS * STEPS_PER_EPOCH
    assert os.path.exists(os.path.join(output, "final.keras"))

    # corrupt every checkpoint (a single broken one falls back to the previous): one clear line, exit 2
    for step in checkpoint_steps(output):
        with open(os.path.join(output, "checkpoints", f"ckpt-{step}.index"), "wb") as handle:
            handle.write(b"not a checkpoint")
    broken = run_cli(*TRAIN_ARGS, "--output", output, "--resume")
    assert broken.returncode == 2
    assert broken.stderr.strip().splitlines()[-1].startswith("error: cannot resume from corrupt checkpoint")
    assert "Traceback" not in broken.stderr


def test_resume_without_checkpoints_is_a_one_line_error(tmp_path, run_cli):
    done = run_cli(*TRAIN_ARGS, "--output", tmp_path / "nothing-here", "--resume")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("error: cannot resume: no checkpoint in")
