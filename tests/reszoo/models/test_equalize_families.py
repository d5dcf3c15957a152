"""Cross-layer equalization leaves every registered family's float outputs unchanged (issue: CNN-safe PTQ)."""
import numpy as np
import pytest

import reszoo
from export.optimize.equalize import equalize
from tests.reszoo.models.test_families import HEAVY, images, marked, tiny_model



def one_per_family():
    """The shallowest model of each family (shortest name: resnet18, resnet20...) by default; others -m slow."""
    first = {}
    for name in sorted(reszoo.list_models(), key=lambda n: (len(n), n)):
        first.setdefault(reszoo.models.registry.get_entry(name).family, name)
    return set(first.values())


DEFAULT = one_per_family() - HEAVY


def with_trained_like_statistics(model, seed=0):
    """BN gammas, betas and statistics of both signs and several scales (init values 1/0 would hide errors)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            shape = np.asarray(layer.moving_variance).shape
            zero_init = np.asarray(layer.gamma) == 0 if layer.gamma is not None else False  # zero-init stays 0
            weights = {"gamma": np.where(zero_init, 0.0, rng.uniform(-2, 2, shape)), "beta": rng.normal(0, 0.5, shape),
                       "moving_mean": rng.normal(0, 0.5, shape), "moving_variance": rng.uniform(0.5, 2, shape)}
            for name, values in weights.items():
                if getattr(layer, name, None) is not None:
                    getattr(layer, name).assign(values.astype("float32"))
    return model


@pytest.mark.parametrize("name", marked(reszoo.list_models(), set(reszoo.list_models()) - DEFAULT))
def test_equalization_keeps_float_outputs(name):
    model = with_trained_like_statistics(tiny_model(name, classifier_activation=None))
    x = images(batch=3)
    equalized, record = equalize(model)
    before, after = model.predict(x, verbose=0), equalized.predict(x, verbose=0)
    assert record["pairs"], f"{name}: no Conv-BN-ReLU-Conv chain was found"
    assert float(np.abs(before - after).max() / np.abs(before).max()) <= 1e-5
