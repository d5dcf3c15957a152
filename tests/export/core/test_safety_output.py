"""`reszoo export --output DIR --force` only ever replaces a previous export: nothing else is lost.

Each refusal: exit 2, one `error:` line, no traceback, no partial folder, every pre-existing file unchanged.
Refusals happen before the model, data or converters load; one real export checks the legit --force.
Never run this file against the pre-fix code: it deleted whatever --output named, '/' included.
"""
import json
import os
import shutil
import socket

import numpy as np
import pytest

from export.core.files import OWNER_FILE
from tests.helpers import assert_one_line_user_error, partial_leftovers, tree_sha256

CHEAP = ("--format", "tflite", "--precision", "fp32", "--data", "digits", "--latency-runs", "0",
         "--verify-samples", "20")


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    """An untrained tiny ResNet-20 (.keras with metadata): fp32 parity holds without training."""
    import reszoo
    from export.core.metadata import save_model

    model = reszoo.create_model("resnet20", width=4, input_shape=(32, 32, 3), num_classes=10)
    path = str(tmp_path_factory.mktemp("model") / "tiny.keras")
    save_model(model, path, {"model_name": "tiny"})
    return path


def user_files(folder, with_manifest=False):
    """A folder of the user's own files (optionally with a manifest.json, as if it were an export)."""
    os.makedirs(os.path.join(folder, "notes"), exist_ok=True)
    for name, text in {"thesis.tex": "years of work", "notes/todo.txt": "buy milk", ".bashrc": "alias ll=ls"}.items():
        with open(os.path.join(folder, name), "w") as handle:
            handle.write(text)
    if with_manifest:
        with open(os.path.join(folder, "manifest.json"), "w") as handle:
            json.dump({"schema": 1, "artifacts": [{"file": "thesis.tex"}]}, handle)
    return str(folder)


def unchanged(before, root):
    """Every file of the `before` snapshot is still under `root` with the same sha256 (TensorFlow's import may
    add caches such as $HOME/.keras/keras.json; nothing that was there may change or go)."""
    after = tree_sha256(root)
    assert {name: after.get(name) for name in before} == before
    for folder, _, _ in os.walk(root):
        assert partial_leftovers(folder) == [], folder


def refused(run_cli, sandbox, args, fragments, cwd=None):
    """Run `reszoo export ARGS`; assert the one-line refusal and that nothing under `sandbox` changed."""
    before = tree_sha256(sandbox)
    result = run_cli("export", *args, *CHEAP, cwd=cwd)
    assert_one_line_user_error(result, *fragments)
    unchanged(before, sandbox)
    return result


def test_force_on_the_folder_holding_the_input_model(run_cli, model_file, tmp_path):
    project = user_files(tmp_path / "project", with_manifest=True)  # even a folder that looks like an export
    shutil.copy(model_file, os.path.join(project, "tiny.keras"))
    refused(run_cli, tmp_path, [os.path.join(project, "tiny.keras"), "--output", project, "--force"],
            [repr(project), "holds the input model", "tiny.keras", "choose another folder"])


def test_force_on_a_parent_of_the_input_model(run_cli, model_file, tmp_path):
    parent = user_files(tmp_path / "work", with_manifest=True)
    os.makedirs(os.path.join(parent, "models"))
    shutil.copy(model_file, os.path.join(parent, "models", "tiny.keras"))
    refused(run_cli, tmp_path, [os.path.join(parent, "models", "tiny.keras"), "--output", parent, "--force"],
            ["holds the input model"])


def test_force_on_the_current_directory(run_cli, model_file, tmp_path):
    cwd = user_files(tmp_path / "cwd", with_manifest=True)
    refused(run_cli, tmp_path, [model_file, "--output", ".", "--force"],
            ["'.'", "is the current directory", "--force only replaces a previous export"], cwd=cwd)


def test_force_on_a_folder_that_is_not_an_export(run_cli, model_file, tmp_path):
    other = user_files(tmp_path / "other")
    refused(run_cli, tmp_path, [model_file, "--output", other, "--force"],
            [repr(other), "not a previous export", "manifest.json"])


def test_force_on_home(run_cli, model_file, tmp_path, monkeypatch):
    home = user_files(tmp_path / "home", with_manifest=True)
    monkeypatch.setenv("HOME", home)  # the subprocess inherits it
    refused(run_cli, tmp_path, [model_file, "--output", home, "--force"], ["is the home directory"])


def test_force_on_the_filesystem_root(run_cli, model_file, tmp_path):
    refused(run_cli, tmp_path, [model_file, "--output", "/", "--force"], ["'/'", "filesystem root"],
            cwd=user_files(tmp_path / "cwd"))


def test_force_on_the_folder_holding_the_data(run_cli, model_file, tmp_path):
    export_dir = user_files(tmp_path / "exp", with_manifest=True)
    data = os.path.join(export_dir, "data.npz")
    np.savez(data, x=np.zeros((4, 32, 32, 3), "uint8"), y=np.arange(4))
    args = [model_file, "--output", export_dir, "--force", "--format", "tflite", "--data", data]
    before = tree_sha256(tmp_path)
    result = run_cli("export", *args)
    assert_one_line_user_error(result, "holds the --data path", "data.npz")
    unchanged(before, tmp_path)


def test_the_api_refuses_too(model_file, tmp_path):
    from export.core.errors import UserError
    from export.pipeline import export_model

    project = user_files(tmp_path / "project", with_manifest=True)
    shutil.copy(model_file, os.path.join(project, "tiny.keras"))
    before = tree_sha256(tmp_path)
    with pytest.raises(UserError, match="holds the input model"):
        export_model(os.path.join(project, "tiny.keras"), formats=["tflite"], precisions=["fp32"], data="digits",
                     output_dir=project, force=True, show_progress=False, latency_runs=0)
    unchanged(before, tmp_path)


def test_force_replaces_a_previous_export_whole_and_removes_dead_partials(run_cli, model_file, tmp_path):
    exports = tmp_path / "exports"
    previous = user_files(exports / "tiny", with_manifest=True)
    neighbour = user_files(exports / "neighbour")
    stale = exports / ".tiny.partial-dead"
    stale.mkdir()
    with open(stale / OWNER_FILE, "w") as handle:  # pid 2**22 + 1 is above Linux's pid_max: never alive
        json.dump({"pid": 2 ** 22 + 1, "host": socket.gethostname(), "created": 0, "target": "tiny"}, handle)
    kept = {"model": tree_sha256(os.path.dirname(model_file)), "neighbour": tree_sha256(neighbour)}
    result = run_cli("export", model_file, "--output", previous, "--force", *CHEAP)
    assert result.returncode == 0, result.stderr[-3000:]
    files = sorted(os.listdir(previous))
    assert files == ["manifest.json", "report.json", "report.md", "tiny_fp32.tflite"], files
    with open(os.path.join(previous, "manifest.json")) as handle:
        assert [a["file"] for a in json.load(handle)["artifacts"]] == ["tiny_fp32.tflite"]
    assert kept == {"model": tree_sha256(os.path.dirname(model_file)), "neighbour": tree_sha256(neighbour)}
    assert partial_leftovers(exports) == []
