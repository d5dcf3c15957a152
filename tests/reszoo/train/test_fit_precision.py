"""Mixed precision, loss scaling and XLA code paths, exercised on CPU for a few steps."""
import keras
import numpy as np
import pytest

from reszoo.train import fit
from reszoo.train.optim import WarmupSchedule, make_optimizer


def short_fit(**kwargs):
    return fit("resnet20", "digits", epochs=1, batch_size=32, steps_per_epoch=2, model_kwargs={"width": 4},
               verbose=False, **kwargs)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_step_runs_and_global_policy_is_restored(policy):
    result = short_fit(mixed_precision=policy)
    assert np.isfinite(result.history[-1]["loss"])
    assert result.model.get_layer("conv1_conv").compute_dtype == policy.split("_")[1]
    assert result.model.get_layer("conv1_conv").kernel.dtype == "float32"
    assert keras.config.dtype_policy().name == "float32"


def test_float16_uses_loss_scale_optimizer():
    optimizer = make_optimizer("sgd", lr=0.1, schedule="cosine", total_steps=10, mixed_float16=True)
    assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    assert not isinstance(make_optimizer("sgd", lr=0.1, schedule="cosine", total_steps=10),
                          keras.optimizers.LossScaleOptimizer)


def test_xla_step_matches_plain_step():
    plain, compiled = short_fit(), short_fit(xla=True)
    assert np.isfinite(compiled.history[-1]["loss"])
    assert compiled.history[-1]["loss"] == pytest.approx(plain.history[-1]["loss"], rel=1e-3)


@pytest.mark.parametrize("kind, expected", [("cosine", [0.0, 0.05, 0.1, 0.05, 0.0]),
                                            ("step", [0.0, 0.05, 0.1, 0.01, 0.001])])
def test_warmup_then_decay(kind, expected):
    schedule = WarmupSchedule(0.1, total_steps=10, warmup_steps=2, kind=kind)
    values = [float(schedule(step)) for step in (0, 1, 2, 6, 10)]
    np.testing.assert_allclose(values, expected, atol=1e-6)
