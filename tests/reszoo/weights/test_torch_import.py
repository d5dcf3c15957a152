"""PyTorch weights without torch: random state dicts in each layout, saved in each file format, imported and
compared against an independent numpy/tf.nn forward with torch semantics (tests/reszoo/weights/torch_reference).
"""
import collections
import os

import numpy as np
import pytest

from reszoo.errors import UserError
from tests.reszoo.weights.cases import CASES, LAYOUT_NAME, MAX_RELATIVE_ERROR, inputs, relative_error
from tests.reszoo.weights.torch_writers import (save_torch_legacy, save_torch_zip, write_malicious_pickle,
                                                 write_pickle_with_global)

@pytest.mark.parametrize("case", list(CASES))
def test_import_matches_the_torch_reference_forward(case, states):
    from reszoo.weights import import_torch

    name, layout, arch, extra, side = CASES[case]
    state, expected = states[case]
    model, report = import_torch(state, name, classifier_activation=None, input_shape=(side, side, 3), **extra)
    assert report.layout == LAYOUT_NAME.get(layout, layout)  # auto-detected
    assert report.tensors == sum(1 for k in state if not k.endswith("num_batches_tracked"))
    error = relative_error(model(inputs(side)).numpy(), expected)
    assert error <= MAX_RELATIVE_ERROR, (case, error)


def _write_safetensors(state, path):
    from safetensors.numpy import save_file

    save_file({k: np.array(v, order="C") for k, v in state.items()}, str(path))


def _write_npz(state, path):
    np.savez(path, **state)


# format -> writer(state, path); suffix
FORMATS = {
    "zip": (lambda s, p: save_torch_zip(collections.OrderedDict(s), p), ".pth"),
    "zip-wrapped-shared-views": (lambda s, p: save_torch_zip(
        {"epoch": 90, "arch": "resnet20", "state_dict": collections.OrderedDict(
            ("module." + k, v) for k, v in s.items())}, p, share_storage=True, transpose_views=True), ".pth.tar"),
    "legacy": (lambda s, p: save_torch_legacy({"best_prec1": 91.7, "state_dict": collections.OrderedDict(
        ("module." + k, v) for k, v in s.items())}, p), ".th"),
    "legacy-torch03": (lambda s, p: save_torch_legacy({"best_prec1": 91.78, "state_dict": collections.OrderedDict(
        ("module." + k, v) for k, v in s.items())}, p, torch03=True), ".th"),
    "legacy-shared-views": (lambda s, p: save_torch_legacy(collections.OrderedDict(s), p, share_storage=True,
                                                           transpose_views=True), ".pt"),
    "safetensors": (_write_safetensors, ".safetensors"),
    "npz": (_write_npz, ".npz"),
}


@pytest.mark.parametrize("file_format", list(FORMATS))
def test_every_file_format_gives_the_same_model(file_format, states, tmp_path):
    from reszoo.weights import from_torch, load_state_dict

    state, expected = states["cifar-resnet20-A"]
    write, suffix = FORMATS[file_format]
    path = tmp_path / f"weights{suffix}"
    write(state, path)
    loaded = load_state_dict(path)
    assert set(loaded) == set(state)
    assert all(np.array_equal(loaded[k], state[k]) for k in state)
    model = from_torch(path, "resnet20", classifier_activation=None)
    assert relative_error(model(inputs(32)).numpy(), expected) <= MAX_RELATIVE_ERROR


def test_mapping_of_tensor_likes_and_ema_preference():
    from reszoo.weights import load_state_dict

    class TensorLike:  # what torch tensors offer: .detach().cpu().numpy()
        def __init__(self, value):
            self.value = value

        def detach(self):
            return self

        def cpu(self):
            return self

        def numpy(self):
            return self.value

    checkpoint = {"model": {"model.fc.weight": TensorLike(np.ones((2, 2)))},
                  "model_ema": {"fc.weight": TensorLike(np.zeros((2, 2)))}}
    assert load_state_dict(checkpoint)["fc.weight"].sum() == 4
    assert load_state_dict(checkpoint, prefer_ema=True)["fc.weight"].sum() == 0
    with pytest.raises(UserError, match="no EMA weights"):
        load_state_dict({"state_dict": {"fc.weight": np.ones(1)}}, prefer_ema=True)


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_malicious_pickle_is_refused_without_running(fmt, tmp_path):
    from reszoo.weights import load_state_dict

    path = tmp_path / "evil.pth"
    marker = write_malicious_pickle(path, fmt)
    with pytest.raises(UserError, match=r"refused to load: the pickle asks for the global (posix|os)\.system"):
        load_state_dict(path)
    assert not os.path.exists(marker)


@pytest.mark.parametrize("module, name", [("builtins", "eval"), ("builtins", "getattr"), ("subprocess", "Popen")])
def test_any_other_global_is_refused_by_name(module, name, tmp_path):
    from reszoo.weights import load_state_dict

    path = write_pickle_with_global(tmp_path / "odd.pth", module, name, args=("1",))
    with pytest.raises(UserError, match=f"global {module}.{name}"):
        load_state_dict(path)


def test_truncated_and_foreign_files_fail_in_one_line(states, tmp_path):
    from reszoo.weights import load_state_dict

    state, _ = states["cifar-resnet20-A"]
    legacy = tmp_path / "cut.th"
    save_torch_legacy(collections.OrderedDict(state), legacy)
    legacy.write_bytes(legacy.read_bytes()[:-1000])
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint")
    for path in (legacy, text, tmp_path / "missing.pth", tmp_path / "weights.h6"):
        with pytest.raises(UserError) as error:
            load_state_dict(path)
        assert "\n" not in str(error.value)


def test_misfits_name_the_unused_the_missing_and_both_shapes(states):
    from reszoo.weights import from_torch

    state, _ = states["cifar-resnet20-A"]
    extra = {**state, "layer9.0.conv1.weight": np.zeros((1, 1, 1, 1), "float32")}
    del extra["layer1.0.conv1.weight"]
    with pytest.raises(UserError, match=r"unused tensors: layer9\.0\.conv1\.weight; missing: "
                                        r"conv2_block1_1_conv \(no tensors\)"):
        from_torch(extra, "resnet20")
    wrong = {**state, "layer1.0.conv2.weight": np.zeros((16, 16, 1, 1), "float32")}
    with pytest.raises(UserError, match=r"conv2_block1_2_conv <- layer1\.0\.conv2\.weight: expected \(3, 3, 16, 16\), "
                                        r"got \(1, 1, 16, 16\) \(torch shape \(16, 16, 1, 1\)\)"):
        from_torch(wrong, "resnet20")
    with pytest.raises(UserError, match="missing: conv2_block4_1_bn"):
        from_torch(state, "resnet32")  # a deeper model than the weights
    with pytest.raises(UserError, match="unknown layout 'keras'"):
        from_torch(state, "resnet20", layout="keras")
    with pytest.raises(UserError, match="cannot tell the layout"):
        from_torch({"encoder.weight": np.ones(3)}, "resnet20")


def test_headless_import_drops_and_reports_the_classifier(states):
    from reszoo.weights import import_torch

    state, _ = states["cifar-resnet20-A"]
    model, report = import_torch(state, "resnet20", include_top=False, pooling="avg")
    assert report.dropped == ["linear.bias", "linear.weight"]
    assert model.output_shape == (None, 64)


def test_imported_models_use_torch_batch_norm_epsilon(states):
    import keras

    from reszoo.weights import from_torch

    model = from_torch(states["cifar-resnet20-A"][0], "resnet20")
    assert {layer.epsilon for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)} == {1e-5}
