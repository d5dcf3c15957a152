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


@pytest.fixture(scope="module")
def base_export(tmp_path_factory):
    """(export dir, its source .keras): a width-4 resnet20 exported once per module to TFLite fp32 on 20 digits."""
    import reszoo
    from export.core.metadata import save_model
    from export.pipeline import export_model

    root = tmp_path_factory.mktemp("tiny_export")
    model_path = str(root / "tiny.keras")
    save_model(reszoo.create_model("resnet20", width=4, input_shape=(32, 32, 3), num_classes=10), model_path,
               {"model_name": "tiny"})
    export_model(model_path, formats=["tflite"], precisions=["fp32"], data="digits", output_dir=root / "export",
                 latency_runs=0, verify_samples=20, show_progress=False)
    return root / "export", model_path


@pytest.fixture
def export_dir(base_export, tmp_path):
    """A private copy of `base_export`'s dir under tmp_path/export (reference: the shared source .keras)."""
    import shutil

    shutil.copytree(base_export[0], tmp_path / "export")
    return tmp_path / "export"
