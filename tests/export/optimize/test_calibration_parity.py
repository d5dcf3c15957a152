"""Every calibration method (`export.calibration`) gives artifacts of the trained tiny ResNet that pass their
parity gates: TFLite int8 (int8 I/O), the micro source holding the same bytes, TFLite int16x8 and ONNX int8,
each run in its own runtime against the Keras model on the held-out digits."""
import pytest

from export import calibration

ROWS = (("tflite", "int8"), ("micro", "int8"), ("tflite", "int16x8"), ("onnx", "int8"))  # micro reuses tflite int8
# Measured (docs/quantization.md "Calibration methods"): entropy (KL) clips the first conv's ReLU output to
# 20 % of its max and the int8 rows agree on ~62 % of the held-out digits (gate 98 %); int16x8 passes. Strict: if entropy ever
# passes here, this marker must go.
ENTROPY_FAILS = pytest.mark.xfail(strict=True, reason="entropy calibration: int8 top-1 agreement ~62 % < 98 %")
METHODS = [pytest.param(name, marks=ENTROPY_FAILS) if name == "entropy" else name for name in calibration.METHODS]


@pytest.fixture(scope="module")
def traced(trained_resnet, digits, tmp_path_factory):
    """(SavedModel dir, calibration samples, held-out x, y, Keras reference outputs) of the trained tiny model."""
    import numpy as np

    from export.runtimes import KerasRunner
    from export.serving_graph import to_saved_model

    x_train, _, x_held_out, y_held_out = digits
    order = np.random.default_rng(0).permutation(len(x_train))
    saved_model = to_saved_model(trained_resnet, str(tmp_path_factory.mktemp("traced") / "saved_model"))["path"]
    reference = KerasRunner.from_model(trained_resnet).predict(x_held_out)
    return saved_model, x_train[np.sort(order[:300])], x_held_out, y_held_out, reference


@pytest.mark.parametrize("method", METHODS)
def test_every_row_passes_its_gate(traced, trained_resnet, tmp_path, method):
    from export import formats
    from export.converters import ConvertContext
    from export.cpus.verify import verify_on
    from export.runtimes import load_runner
    from export.gates import DEFAULT_GATES
    from export.verify import verify_runner
    from tests.helpers import avx2_checks

    saved_model, samples, x, y, reference = traced
    context = ConvertContext(saved_model, str(tmp_path), trained_resnet, samples, int8_io=True,
                             calibration_method=method)
    failures = {}
    for fmt, precision in ROWS:
        row = formats.variant(fmt, precision)
        path = str(tmp_path / row.file_name("tiny"))
        formats.convert(row, context, path)
        parity = verify_runner(load_runner(path, fmt, threads=1), precision, x, reference, y, latency_runs=0)
        if not parity["passed"]:
            failures[path] = parity["failures"]
        if fmt == "onnx":  # the int8 kernels that differ by x86 kind: also where AVX2's run (tests.helpers)
            for kind, record in verify_on(avx2_checks(), path, fmt, precision, x, reference, y, DEFAULT_GATES).items():
                failures.update({f"{path} on {kind}": record["failures"]} if not record["passed"] else {})
    assert not failures
