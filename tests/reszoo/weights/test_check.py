"""`check_import` passes exact imports and catches a wrong semantic (here: zero instead of -inf pool padding)."""
import dataclasses

import numpy as np

from tests.reszoo.weights.torch_reference import random_state_dict

V2_ARCH = dict(stage_blocks=(3, 4, 6, 3), width=8, num_classes=5)


def _v2_state():
    return random_state_dict("timm_v2", seed=3, **V2_ARCH)


def test_an_exact_import_passes():
    from reszoo.weights import check_import, import_torch

    state = random_state_dict("cifar", seed=5, depth=20, width=16, option="A", num_classes=10)
    model, report = import_torch(state, "resnet20")  # softmax head: the check compares logits
    result = check_import(model, state, report.layout)
    assert result.passed and result.relative < 1e-5 and "PASS" in result.summary()


def test_a_wrong_pool_padding_fails(monkeypatch):
    import reszoo.models.resnet_v2 as resnet_v2
    from reszoo.weights import check_import, import_torch

    state = _v2_state()
    model, report = import_torch(state, "resnetv2_50", input_shape=(64, 64, 3))
    assert check_import(model, state, report.layout).passed
    zero_padded = dataclasses.replace(resnet_v2.V2_STYLES["timm"], stem_pool_excludes_pad=False)
    monkeypatch.setitem(resnet_v2.V2_STYLES, "timm", zero_padded)  # keras.applications' pool on timm weights
    wrong, _ = import_torch(state, "resnetv2_50", input_shape=(64, 64, 3))
    result = check_import(wrong, state, report.layout)
    assert not result.passed and result.relative > 1e-3 and "FAIL" in result.summary()


def test_headless_models_compare_feature_maps():
    from reszoo.weights import check_import, import_torch

    state = {k: v for k, v in _v2_state().items() if not k.startswith("head.")}
    model, report = import_torch(state, "resnetv2_50", input_shape=(64, 64, 3))
    assert model.output_shape == (None, 2, 2, 256)
    result = check_import(model, state, report.layout)
    assert result.passed and np.isfinite(result.max_abs)
