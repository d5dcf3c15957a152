"""`reszoo train` user mistakes: one line on stderr, exit code 2, no traceback, no files left behind."""
import subprocess
import sys
import textwrap

import pytest

BASE = ["train", "resnet20", "--width", "4", "--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "8"]


def make_bad_folders(root):
    (root / "empty").mkdir()
    (root / "texts" / "cat").mkdir(parents=True)
    (root / "texts" / "cat" / "notes.txt").write_text("not an image")
    (root / "fake" / "cat").mkdir(parents=True)
    (root / "fake" / "cat" / "photo.png").write_text("not a png either")


CASES = {
    "unknown strategy": (["--strategy", "tpu-pod"], "error: Invalid value for '--strategy'"),
    "empty data dir": (["--data", "{root}/empty"], "error: data folder '{root}/empty' has no images"),
    "non-image files": (["--data", "{root}/texts"], "error: class folder '{root}/texts/cat' holds no images"),
    "unreadable image": (["--data", "{root}/fake"], "error: '{root}/fake/cat/photo.png' is not a readable image"),
    "unknown model": (["--data", "digits"], "error: unknown model 'resnet21'"),
}


def assert_one_line_error(done, expected):
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 2, done.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith(expected), done.stderr[-2000:]
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_line_exit_2(case, tmp_path, run_cli):
    make_bad_folders(tmp_path)
    extra, expected = CASES[case]
    args = [a.format(root=tmp_path) for a in BASE + extra]
    if case == "unknown model":
        args[1] = "resnet21"
    done = run_cli(*args, "--output", tmp_path / "out", cwd=tmp_path)
    assert_one_line_error(done, expected.format(root=tmp_path))
    assert not (tmp_path / "out").exists()


def test_batch_not_divisible_by_replicas_is_one_line_exit_2(tmp_path):
    script = textwrap.dedent("""
        import sys, tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from reszoo.cli import main
        main(sys.argv[1:])
    """)
    args = BASE[:-1] + ["7", "--strategy", "mirrored", "--output", str(tmp_path / "out")]
    done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=600)
    assert_one_line_error(done, "error: batch size 7 is not divisible by the 2 replicas of strategy 'mirrored'")
