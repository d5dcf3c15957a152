"""`reszoo train` safety: nothing lost, nothing mixed. A resume refuses changed settings (unless forced and
recorded), skips a truncated checkpoint, saved models honour the umask, history.json is strict JSON, and a run
that fails before its first checkpoint (full disk, diverged loss) leaves no half-made run behind."""
import json
import math
import os
import re
import resource
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

from export.core.errors import UserError
from export.core.metadata import read_metadata
from tests.helpers import assert_one_line_user_error, tree_sha256

EPOCHS, STEPS = 2, 2
TINY = ["--data", "digits", "--batch-size", "16", "--width", "4", "--image-size", "16", "--steps-per-epoch", STEPS]
FIT = dict(batch_size=16, model_kwargs={"width": 4}, image_size=16, steps_per_epoch=STEPS, verbose=False)
UMASK = 0o022


def reszoo(*args, umask=None, file_size_limit=None):
    """`python -m reszoo ARGS` in a subprocess, optionally under a umask and a file-size limit (a full disk)."""

    def limits():
        if umask is not None:
            os.umask(umask)
        if file_size_limit:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes then fail with EFBIG, like ENOSPC
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", "reszoo", *map(str, args)], capture_output=True, text=True,
                          timeout=900, preexec_fn=limits, env=env)


def train(output, *extra, **kwargs):
    return reszoo("train", "resnet20", *TINY, "--epochs", EPOCHS, "--output", output, *extra, **kwargs)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A 2-epoch run (checkpoints at steps 2 and 4) trained by the CLI under umask 022."""
    output = tmp_path_factory.mktemp("base") / "run"
    done = train(output, umask=UMASK)
    assert done.returncode == 0, done.stderr[-3000:]
    return output


@pytest.fixture
def run_copy(finished_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(finished_run, copy)
    return copy


def other_npz(folder):
    rng = np.random.default_rng(0)
    path = folder / "other.npz"
    np.savez(path, x=rng.integers(0, 255, (60, 16, 16, 3)).astype("uint8"), y=np.arange(60) % 10)
    return path


CHANGES = {  # case: (fit keyword changes, expected fragment of the refusal)
    "lr": ({"lr": 0.5}, "lr 0.1 -> 0.5"),
    "label smoothing": ({"label_smoothing": 0.1}, "label_smoothing 0.0 -> 0.1"),
    "epochs": ({"epochs": 3}, "epochs 2 -> 3"),
    "data": ({"data": "npz"}, "data 'digits' -> '"),
    "width": ({"model_kwargs": {"width": 8}}, "model.width 4 -> 8"),
    "optimizer": ({"optimizer": "adamw"}, "optimizer 'sgd' -> 'adamw'"),
}


@pytest.mark.parametrize("case", sorted(CHANGES))
def test_resume_with_a_changed_setting_is_refused_naming_it(case, run_copy, tmp_path):
    from reszoo.train import fit

    change, fragment = CHANGES[case]
    change = {**change, "data": str(other_npz(tmp_path))} if change.get("data") == "npz" else change
    before = tree_sha256(run_copy)
    arguments = {**FIT, "epochs": EPOCHS, "data": "digits", **change}
    with pytest.raises(UserError, match="cannot resume with changed settings") as raised:
        fit("resnet20", output_dir=str(run_copy), resume=True, **arguments)
    assert fragment in str(raised.value) and "corrupt" not in str(raised.value)
    assert tree_sha256(run_copy) == before


def test_cli_lists_every_changed_setting_on_one_line(run_copy, tmp_path):
    before = tree_sha256(run_copy)
    done = reszoo("train", "resnet20", *TINY, "--epochs", 3, "--output", run_copy, "--resume", "--lr", "0.5",
                  "--label-smoothing", "0.1", "--optimizer", "adamw", "--data", other_npz(tmp_path))
    assert_one_line_user_error(done, "cannot resume with changed settings", "epochs 2 -> 3", "lr 0.1 -> 0.5",
                               "label_smoothing 0.0 -> 0.1", "optimizer 'sgd' -> 'adamw'", "data 'digits' -> ")
    assert tree_sha256(run_copy) == before


def test_force_settings_resumes_and_records_the_override(run_copy):
    done = reszoo("train", "resnet20", *TINY, "--epochs", 3, "--lr", "0.05", "--output", run_copy, "--resume",
                  "--force-settings")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "forced settings" in done.stderr and "lr 0.1 -> 0.05" in done.stderr
    expected = [{"step": EPOCHS * STEPS, "changed": {"epochs": [2, 3], "lr": [0.1, 0.05]}}]
    with open(run_copy / "checkpoints" / "run.json") as handle:
        run = json.load(handle)
    assert run["overrides"] == expected and run["settings"]["lr"] == 0.05 and run["settings"]["epochs"] == 3
    training = read_metadata(run_copy / "final.keras")["training"]
    assert training["overrides"] == expected and training["final"]["step"] == 3 * STEPS


def test_truncated_newest_checkpoint_falls_back_to_the_previous_one(run_copy, capsys):
    from reszoo.train import fit

    newest = run_copy / "checkpoints" / f"ckpt-{EPOCHS * STEPS}.data-00000-of-00001"
    os.truncate(newest, 100)
    result = fit("resnet20", "digits", epochs=EPOCHS, output_dir=str(run_copy), resume=True, **FIT)
    warning = capsys.readouterr().err
    assert f"skipped checkpoint '{str(newest)[:-len('.data-00000-of-00001')]}'" in warning
    assert f"resuming from '{run_copy / 'checkpoints' / f'ckpt-{STEPS}'}'" in warning
    assert result.steps == EPOCHS * STEPS and [h["epoch"] for h in result.history] == [1, 2]


def test_all_checkpoints_unreadable_is_one_line_naming_the_newest(run_copy):
    for name in os.listdir(run_copy / "checkpoints"):
        if ".data-" in name:
            os.truncate(run_copy / "checkpoints" / name, 100)
    before = tree_sha256(run_copy)
    done = train(run_copy, "--resume")
    assert_one_line_user_error(done, "cannot resume from corrupt checkpoint",
                               str(run_copy / "checkpoints" / f"ckpt-{EPOCHS * STEPS}"), "older one(s) are unreadable")
    assert tree_sha256(run_copy) == before


@pytest.mark.parametrize("name", ["best.keras", "final.keras"])
def test_saved_models_honour_the_umask(finished_run, name):
    assert os.stat(finished_run / name).st_mode & 0o777 == 0o666 & ~UMASK


def test_history_json_is_strict_json_with_nan_as_null(tmp_path):
    from reszoo.train.logs import HISTORY_FILE, RunLog

    record = {"epoch": 1, "step": 2, "loss": 1.0, "accuracy": 0.5, "val_loss": math.nan, "val_accuracy": 0.25,
              "images_per_second": math.inf, "lr": 0.1}
    log = RunLog(str(tmp_path), verbose=False)
    log.epoch(1, record, [record])
    log.close()

    def refuse(constant):
        raise ValueError(f"not strict JSON: {constant}")

    history = json.loads((tmp_path / HISTORY_FILE).read_text(), parse_constant=refuse)
    assert history[0]["val_loss"] is None and history[0]["images_per_second"] is None


def test_full_disk_before_the_first_checkpoint_leaves_the_user_folder_as_it_was(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("my notes\n")
    before = tree_sha256(folder)
    done = train(folder, file_size_limit=64 * 1024)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]  # after the progress bar
    assert errors == [done.stderr.strip().splitlines()[-1]], done.stderr[-3000:]
    assert "cannot write or read" in errors[0] and "File too large" in errors[0] and str(folder) in errors[0]
    assert tree_sha256(folder) == before and os.listdir(folder) == ["notes.txt"]


def test_diverged_loss_stops_naming_the_step_and_keeps_no_run(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("my notes\n")
    before = tree_sha256(folder)
    done = train(folder, "--lr", "1e30")
    assert done.returncode == 1, done.stderr[-3000:]
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and re.search(r"training diverged: loss is (nan|inf) at step \d", lines[0]), lines
    assert "Traceback" not in done.stderr
    assert tree_sha256(folder) == before and os.listdir(folder) == ["notes.txt"]


def test_diverged_run_removes_the_folders_it_created(tmp_path):
    from reszoo.train import fit
    from reszoo.train.loop import TrainingDiverged

    with pytest.raises(TrainingDiverged, match=r"at step \d+ \(epoch 1\)"):
        fit("resnet20", "digits", epochs=1, lr=1e30, output_dir=str(tmp_path / "new" / "run"), **FIT)
    assert os.listdir(tmp_path) == []
