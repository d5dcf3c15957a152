"""Shared test set-up: quiet TF, fixed seeds, and a CLI runner that goes through `reszoo.cli.main`."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402


@pytest.fixture
def run_cli():
    """Run `reszoo ARGS...` in this process, output captured as a terminal would see it (exit code, stdout,
    stderr with native writes, warnings and tracebacks): `tests.cli_runner.run_reszoo_here`. Start-up, signals
    and import-time environment are subprocess tests (`tests.helpers.run_reszoo`)."""
    from tests.cli_runner import run_reszoo_here

    return run_reszoo_here


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


# The tiny trained model (.keras with metadata) and ONE full export of it, shared by the export and CLI
# tests: everything heavy is session-scoped so the default suite converts once. The model is a depth-8 CIFAR
# ResNet (width 8, 32x32, option-A shortcuts) trained on digits by tools/make_test_models.py and shipped in
# tests/assets/: 99.4 % held-out accuracy, 4 held-out samples whose top-2 probabilities lie within 0.1, fewer than
# the 7 flips (2 %) the int8/dynamic gates allow. Shipped, not trained per session: the same seed gives another
# model on each CPU (float rounding differs between AVX2 and AVX-512), so the gate tests measure the conversion
# on every CPU, not the CPU's training.


@pytest.fixture(scope="session")
def tiny_keras_path(tmp_path_factory):
    """Path of a private copy of the trained tiny ResNet (tests/assets/tiny_w8.keras, width 8) with its
    preprocessing/labels/data metadata."""
    import shutil

    from tests.helpers import TEST_MODELS

    path = os.path.join(tmp_path_factory.mktemp("model"), "tiny.keras")
    shutil.copyfile(TEST_MODELS["w8"], path)
    return path


@pytest.fixture(scope="session")
def full_export(tiny_keras_path, tmp_path_factory):
    """ExportResult of every format x precision (TFLite int8 with int8 I/O), verified on held-out digits."""
    from export.pipeline import export_model

    output_dir = os.path.join(tmp_path_factory.mktemp("exports"), "tiny")
    return export_model(tiny_keras_path, all_formats=True, data="digits", output_dir=output_dir, int8_io=True,
                        latency_runs=3, show_progress=False)


EMULATION_SKIP = "emulated CPU not set up"  # the reason prefix of `tests.helpers.require_cpus`
FILE_SECONDS = {}  # test file -> seconds of its tests' set-up, call and tear-down (summed over workers)
COSTLIEST_FILES = 15


def pytest_runtest_logreport(report):
    """Add each phase's duration to its file; with RESZOO_TEST_TIMES=PATH also append a line to PATH at once
    (a run that is cut short still leaves its times). Under xdist the controller sees every worker's reports,
    so only it counts (a worker's own call would count each phase twice)."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return
    test_file = report.nodeid.split("::")[0]
    FILE_SECONDS[test_file] = FILE_SECONDS.get(test_file, 0.0) + report.duration
    if os.environ.get("RESZOO_TEST_TIMES"):
        with open(os.environ["RESZOO_TEST_TIMES"], "a") as times:
            times.write(f"{report.nodeid}\t{report.when}\t{report.duration:.3f}\t{report.outcome}\n")


def pytest_terminal_summary(terminalreporter):
    """The costliest test files (so the suite's cost stays visible), and the emulated-CPU checks that did not
    run here (never a silent skip) with the command that sets them up."""
    costliest = sorted(FILE_SECONDS.items(), key=lambda item: -item[1])[:COSTLIEST_FILES]
    if costliest:
        terminalreporter.write_sep("-", f"the {len(costliest)} costliest test files (seconds, all workers)")
        for test_file, seconds in costliest:
            terminalreporter.write_line(f"{seconds:8.1f}  {test_file}")
    skipped = [report for report in terminalreporter.stats.get("skipped", [])
               if EMULATION_SKIP in str(report.longrepr)]
    if skipped:
        terminalreporter.write_line(f"not run: {len(skipped)} emulated-CPU checks ({EMULATION_SKIP}); "
                                    "set them up with `make cpus` (reszoo cpus install), then run again")
