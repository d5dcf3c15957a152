"""export.converters.onnx.to_onnx: tf2onnx without its per-optimizer copies writes the same graph."""
import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest

from export.converters import onnx as onnx_converter
from export.formats import FP32_GATE
from export.serving_graph import to_saved_model

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONVERT = """
import sys, tf2onnx
from export.converters import onnx as oc
saved_model, path, lean = sys.argv[1], sys.argv[2], sys.argv[3] == "lean"
if lean:
    oc.to_onnx(saved_model, path)
else:
    graph_def, inputs, outputs, renames = oc._frozen_serving_graph(saved_model)
    tf2onnx.convert.from_graph_def(graph_def, input_names=inputs, output_names=outputs, opset=oc.OPSET,
                                   tensors_to_rename=renames, output_path=path)
"""


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    """A narrow ResNeXt-50: grouped convs, which Keras wraps in XLA-compiled functions."""
    import reszoo

    model = reszoo.create_model("resnext50_32x4d", input_shape=(32, 32, 3), num_classes=5, width=16)
    return to_saved_model(model, str(tmp_path_factory.mktemp("sm") / "saved_model"), False)["path"]


def _converted_in_a_fresh_process(saved_model, path, how):
    """tf2onnx numbers new nodes with a process-wide counter (a second conversion in one process can even
    come out with other nodes), so each way converts in a process of its own."""
    environment = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "3"}
    subprocess.run([sys.executable, "-c", CONVERT, saved_model, str(path), how], check=True, env=environment,
                   capture_output=True)
    return path


def _weights(path):
    """Sorted sha256 of the file's weight initializers (>= 64 values): what tf2onnx folds, in any node order.
    tf2onnx's structure varies between runs of the plain path itself (ReduceMean or GlobalAveragePool +
    Squeeze, one Reshape more or less: measured over fresh processes, even with PYTHONHASHSEED fixed), so the
    graphs are compared by weights and outputs."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    arrays = [numpy_helper.to_array(t) for t in graph.initializer]
    return sorted(hashlib.sha256(a.tobytes()).hexdigest() for a in arrays if a.size >= 64)


def test_lean_optimizers_write_the_same_model_as_tf2onnx(saved_model, tmp_path):
    from export.runtimes import OnnxRunner

    lean = _converted_in_a_fresh_process(saved_model, tmp_path / "lean.onnx", "lean")
    plain = _converted_in_a_fresh_process(saved_model, tmp_path / "plain.onnx", "plain")
    assert _weights(lean) == _weights(plain) and len(_weights(lean)) >= 50  # ResNeXt-50: 53 convs + dense
    x = np.random.default_rng(1).random((3, 32, 32, 3), dtype=np.float32)
    np.testing.assert_allclose(OnnxRunner(str(lean)).predict(x), OnnxRunner(str(plain)).predict(x), atol=1e-6)


def test_the_lean_file_runs_like_the_saved_model_and_tf2onnx_is_restored(saved_model, tmp_path):
    from tf2onnx import constants, graph

    from export.runtimes import OnnxRunner, SavedModelRunner

    original = graph.Node.update_proto
    path = onnx_converter.to_onnx(saved_model, tmp_path / "lean.onnx")
    assert graph.Node.update_proto is original and constants.ENV_TF2ONNX_CATCH_ERRORS not in os.environ
    x = np.random.default_rng(0).random((4, 32, 32, 3), dtype=np.float32)
    expected = SavedModelRunner(saved_model).predict(x)
    # Two runtimes (oneDNN vs MLAS kernels) round differently through ~50 random-weight convs: the export's
    # own fp32 floor (relative to the output range) is the limit, not one machine's difference (1e-5 on CI).
    limit = FP32_GATE["noise_floor"] * float(np.ptp(expected))
    np.testing.assert_allclose(OnnxRunner(str(path)).predict(x), expected, rtol=0, atol=limit)
