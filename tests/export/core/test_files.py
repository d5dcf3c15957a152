"""export.core.files: atomic writes, strict JSON, the output-target check, staged dirs and stale partials."""
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from export.core import files
from export.core.files import (OWNER_FILE, atomic_write, check_output_target, current_umask, remove_stale_partials,
                               replace_dir, staged_dir, write_bytes, write_json)
from export.core.errors import UserError
from tests.helpers import partial_leftovers, tree_sha256


def make_export(folder, **extra):
    """A folder that looks like a previous export: manifest.json plus `extra` files."""
    os.makedirs(folder)
    write_json(os.path.join(folder, "manifest.json"), {"schema": 1, "artifacts": [{"file": "m.tflite"}]})
    for name, text in {"m.tflite": "old model", **extra}.items():
        with open(os.path.join(folder, name), "w") as handle:
            handle.write(text)
    return folder


def strict_load(path):
    """json.load that fails on NaN/Infinity (what strict JSON readers do)."""
    with open(path) as handle:
        return json.load(handle, parse_constant=lambda name: pytest.fail(f"non-strict JSON constant {name}"))


def dead_pid():
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def make_partial(parent, suffix, owner):
    path = os.path.join(parent, f".out.partial-{suffix}")
    os.makedirs(path)
    with open(os.path.join(path, "half.tflite"), "w") as handle:
        handle.write("half")
    if owner is not None:
        write_json(os.path.join(path, OWNER_FILE), owner)
    return path


# ------------------------------------------------------------------------------------------------ atomic files
def test_write_json_writes_null_for_nan_and_inf(tmp_path):
    path = tmp_path / "deep" / "report.json"
    write_json(path, {"loss": float("nan"), "top": [float("inf"), -float("inf"), 1.5],
                      "np": np.float32("nan"), "arr": np.array([1.0, np.nan])})
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert strict_load(path) == {"loss": None, "top": [None, None, 1.5], "np": None, "arr": [1.0, None]}


def test_manifest_write_json_is_the_same_function():
    from export import manifest

    assert manifest.write_json is write_json and manifest.current_umask is current_umask


def test_atomic_write_gives_the_umask_mode_and_leaves_no_temp(tmp_path):
    path = tmp_path / "a.bin"
    write_bytes(path, b"new")
    assert path.read_bytes() == b"new"
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~current_umask()
    assert os.listdir(tmp_path) == ["a.bin"]


def test_atomic_write_failure_keeps_the_old_file_and_removes_the_temp(tmp_path):
    path = tmp_path / "a.json"
    path.write_text("old")

    def half_then_fail(temp):
        with open(temp, "w") as handle:
            handle.write("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, half_then_fail)
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["a.json"]


# ---------------------------------------------------------------------------------------- the output check
def test_absent_output_and_a_previous_export_with_force_are_allowed(tmp_path):
    check_output_target(tmp_path / "new", force=False)
    make_export(tmp_path / "old")
    check_output_target(tmp_path / "old", force=True, inputs={"the input model": str(tmp_path / "m.keras")})


@pytest.mark.parametrize("force", [False, True])
def test_refusals(tmp_path, monkeypatch, force):
    model = tmp_path / "proj" / "sub" / "m.keras"
    make_export(tmp_path / "proj", notes="mine")
    os.makedirs(model.parent)
    model.write_text("model")
    plain = tmp_path / "plain"
    plain.mkdir()
    home = make_export(tmp_path / "home")
    monkeypatch.setenv("HOME", str(home))
    make_export(tmp_path / "outer")
    monkeypatch.chdir(make_export(tmp_path / "outer" / "cwd"))
    inputs = {"the input model": str(model), "the --data path": "digits"}
    cases = {str(tmp_path / "proj"): "holds the input model", str(model.parent): "holds the input model",
             ".": "is the current directory", str(tmp_path / "outer"): "contains the current directory",
             str(home): "is the home directory", "/": "filesystem root", str(plain): "not a previous export"}
    before = tree_sha256(tmp_path)
    for output, fragment in cases.items():
        with pytest.raises(UserError, match=fragment) as caught:
            check_output_target(output, force=force, inputs=inputs)
        assert repr(output) in str(caught.value) and "\n" not in str(caught.value)
    assert tree_sha256(tmp_path) == before


def test_data_inside_the_output_is_refused(tmp_path):
    make_export(tmp_path / "out", **{"data.npz": "x"})
    with pytest.raises(UserError, match="holds the --data path"):
        check_output_target(tmp_path / "out", True, {"the --data path": str(tmp_path / "out" / "data.npz")})


def test_a_symlink_to_an_export_is_not_replaced(tmp_path):
    make_export(tmp_path / "real")
    os.symlink(tmp_path / "real", tmp_path / "link")
    with pytest.raises(UserError, match="not a previous export"):
        check_output_target(tmp_path / "link", force=True)


def test_a_previous_export_needs_force(tmp_path):
    make_export(tmp_path / "out")
    with pytest.raises(UserError, match="pass --force"):
        check_output_target(tmp_path / "out")


# ------------------------------------------------------------------------------------ replacement and rollback
def test_staged_dir_replaces_a_previous_export_whole(tmp_path):
    make_export(tmp_path / "out", extra="stale")
    with staged_dir(tmp_path / "out", force=True) as work:
        assert os.path.isfile(os.path.join(work, OWNER_FILE))
        write_bytes(os.path.join(work, "new.tflite"), b"new")
        write_json(os.path.join(work, "manifest.json"), {"schema": 1})
    assert sorted(os.listdir(tmp_path / "out")) == ["manifest.json", "new.tflite"]
    assert os.listdir(tmp_path) == ["out"]


def failing_second_rename(monkeypatch):
    """Make the 2nd os.rename call (the rename-in) fail; others go through."""
    real, calls = os.rename, []

    def rename(source, destination):
        calls.append((source, destination))
        if len(calls) == 2:
            raise OSError("disk on fire")
        return real(source, destination)

    monkeypatch.setattr(files.os, "rename", rename)
    return calls


def test_replace_dir_rolls_back_when_the_rename_in_fails(tmp_path, monkeypatch):
    make_export(tmp_path / "out", extra="keep")
    old = tree_sha256(tmp_path / "out")
    new = make_export(tmp_path / "new")
    calls = failing_second_rename(monkeypatch)
    with pytest.raises(OSError, match="disk on fire"):
        replace_dir(new, tmp_path / "out")
    assert len(calls) == 3  # aside, in (failed), back
    assert tree_sha256(tmp_path / "out") == old and os.path.isdir(new)
    assert partial_leftovers(tmp_path) == []


def test_staged_dir_rollback_keeps_the_old_export_and_removes_the_partial(tmp_path, monkeypatch):
    make_export(tmp_path / "out", extra="keep")
    old = tree_sha256(tmp_path / "out")
    failing_second_rename(monkeypatch)
    with pytest.raises(OSError, match="disk on fire"):
        with staged_dir(tmp_path / "out", force=True) as work:
            write_json(os.path.join(work, "manifest.json"), {"schema": 1})
    assert tree_sha256(tmp_path / "out") == old and partial_leftovers(tmp_path) == []


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt, SystemExit])
def test_partial_is_removed_on_any_exception(tmp_path, error):
    make_export(tmp_path / "out")
    old = tree_sha256(tmp_path)
    with pytest.raises(error):
        with staged_dir(tmp_path / "out", force=True) as work:
            write_bytes(os.path.join(work, "half.tflite"), b"half")
            raise error()
    assert tree_sha256(tmp_path) == old and partial_leftovers(tmp_path) == []


def test_the_final_check_refuses_an_output_that_appeared_meanwhile(tmp_path):
    with pytest.raises(UserError, match="not a previous export"):
        with staged_dir(tmp_path / "out") as work:
            write_bytes(os.path.join(work, "m.tflite"), b"new")
            (tmp_path / "out").mkdir()
            (tmp_path / "out" / "theirs.txt").write_text("someone else's")
    assert os.listdir(tmp_path / "out") == ["theirs.txt"] and partial_leftovers(tmp_path) == []


# ---------------------------------------------------------------------------------------------- stale partials
def test_only_provably_dead_partials_of_this_target_are_removed(tmp_path):
    host = socket.gethostname()
    dead = make_partial(tmp_path, "dead", {"pid": dead_pid(), "host": host, "created": 0, "target": "out"})
    kept = [make_partial(tmp_path, "live", {"pid": os.getpid(), "host": host, "created": 0, "target": "out"}),
            make_partial(tmp_path, "nofile", None),
            make_partial(tmp_path, "elsewhere", {"pid": dead_pid(), "host": host + "-other", "target": "out"}),
            make_partial(tmp_path, "x.partial-y", {"pid": dead_pid(), "host": host, "target": "out.partial-x"})]
    with staged_dir(tmp_path / "out") as work:
        write_json(os.path.join(work, "manifest.json"), {"schema": 1})
    assert not os.path.exists(dead)
    assert all(os.path.isdir(path) for path in kept)
    assert sorted(os.listdir(tmp_path / "out")) == ["manifest.json"]


def test_a_killed_run_leaves_an_owned_partial_that_the_next_run_removes(tmp_path):
    script = ("import os, signal, sys\nfrom export.core.files import staged_dir, write_bytes\n"
              "with staged_dir(sys.argv[1]) as work:\n"
              "    write_bytes(os.path.join(work, 'half.tflite'), b'half')\n"
              "    os.kill(os.getpid(), signal.SIGKILL)\n")
    killed = subprocess.run([sys.executable, "-c", script, str(tmp_path / "out")], cwd=os.getcwd())
    assert killed.returncode == -9
    [left] = partial_leftovers(tmp_path)
    assert os.path.isfile(tmp_path / left / OWNER_FILE)
    assert remove_stale_partials(tmp_path / "out") == [str(tmp_path / left)]
    assert partial_leftovers(tmp_path) == []


def test_remove_created_refuses_cwd_home_and_roots_and_removes_the_rest(tmp_path, monkeypatch):
    from export.core.files import remove_created

    home, work = tmp_path / "home", tmp_path / "home" / "project"
    work.mkdir(parents=True)
    (work / "keep.txt").write_text("user data")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    for protected in (work, home, tmp_path, "/"):
        with pytest.raises(UserError, match="refusing to remove"):
            remove_created(protected)
    assert (work / "keep.txt").read_text() == "user data"
    made = tmp_path / "made_by_a_run"
    (made / "sub").mkdir(parents=True)
    remove_created(made)
    assert not made.exists()
