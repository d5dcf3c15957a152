"""Recipes as data and their building blocks: every recipe setting is a real option with a source, command-line
options override recipes, learning-rate values at given steps, weight-decay masks, mixup/cutmix targets, BCE,
EMA weights."""
import dataclasses
import json
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from reszoo.train.config import TrainConfig
from reszoo.train.recipe import MODEL_SETTINGS, SCALED_LR, list_recipes, load_recipe, resolve_options


@pytest.mark.parametrize("name", list_recipes())
def test_every_recipe_setting_is_an_option_with_a_source(name):
    recipe = load_recipe(name)
    fields = {field.name for field in dataclasses.fields(TrainConfig)}
    for key, entry in recipe["settings"].items():
        assert key in fields | set(MODEL_SETTINGS) | {SCALED_LR}, key
        assert isinstance(entry["source"], str) and len(entry["source"]) > 20, key
    assert recipe["published"]["top1"] and recipe["published"]["source"]
    options = resolve_options(name, {})
    TrainConfig(**{k: v for k, v in options.items() if k in fields})  # every value passes the config checks


def test_command_line_options_override_the_recipe_and_scale_its_lr():
    options = resolve_options("nvidia-rn50-90", {"batch_size": 256, "epochs": 2, "model_kwargs": {"width": 8}})
    assert options["lr"] == pytest.approx(0.256) and options["epochs"] == 2 and options["momentum"] == 0.875
    assert options["model_kwargs"] == {"width": 8} and options["recipe"] == "nvidia-rn50-90"
    assert resolve_options("nvidia-rn50-90", {"lr": 0.1})["lr"] == 0.1  # an explicit lr is not scaled
    assert resolve_options("rsb-a3", {})["lr"] == pytest.approx(0.008)  # 1e-3 per 256 at 2048


def test_nvidia_schedule_values_at_given_steps():
    from reszoo.train.optim import make_optimizer

    steps_per_epoch, lr = 10, 2.048
    optimizer = make_optimizer("sgd", lr=lr, schedule="cosine", total_steps=90 * steps_per_epoch,
                               warmup_steps=8 * steps_per_epoch, momentum=0.875, nesterov=False)
    values = {step: float(optimizer._learning_rate(step)) for step in (0, 40, 80, 80 + 410, 900)}  # the schedule
    assert values[0] == 0.0 and values[40] == pytest.approx(lr / 2) and values[80] == pytest.approx(lr)
    assert values[490] == pytest.approx(lr / 2, rel=1e-5) and values[900] == pytest.approx(0.0, abs=1e-6)
    assert optimizer.momentum == 0.875 and optimizer.nesterov is False


def test_weight_decay_skips_batch_norm_and_biases():
    from reszoo.train.optim import make_optimizer

    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.Dense(2, name="dense")(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, x)
    optimizer = make_optimizer("lamb", lr=1e-3, schedule="cosine", total_steps=10, weight_decay=0.02)
    optimizer.build(model.trainable_variables)
    decayed = {v.path: optimizer._use_weight_decay(v) for v in model.trainable_variables}
    assert decayed == {"conv/kernel": True, "conv/bias": False, "bn/gamma": False, "bn/beta": False,
                       "dense/kernel": True, "dense/bias": False}


def _images(batch=8, side=12, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (batch, side, side, 3)).astype("float32")


def test_mixup_targets_and_images_use_the_same_lam():
    from reszoo.train.mixing import Mixing, mix_batch

    x, labels = _images(), np.array([0, 1, 2, 3, 0, 1, 2, 3])
    mixed, targets = mix_batch(x, labels, 4, Mixing(mixup_alpha=0.4), [3, 4])
    lam = float(targets[0, 0])  # image 0 (class 0) mixed with image 7 (class 3)
    assert float(targets[0, 3]) == pytest.approx(1 - lam) and np.allclose(targets.numpy().sum(1), 1.0)
    np.testing.assert_allclose(mixed.numpy(), lam * x + (1 - lam) * x[::-1], rtol=1e-5, atol=1e-3)
    again, _ = mix_batch(x, labels, 4, Mixing(mixup_alpha=0.4), [3, 4])
    np.testing.assert_array_equal(mixed.numpy(), again.numpy())  # stateless: same seed, same mix


def test_cutmix_targets_equal_the_pasted_area():
    from reszoo.train.mixing import Mixing, mix_batch

    x, labels = _images(side=20), np.arange(8) % 4
    for seed in range(5):
        mixed, targets = mix_batch(x, labels, 4, Mixing(cutmix_alpha=1.0), [seed, 1])
        pasted = np.all(mixed.numpy() != x, axis=-1)[0]  # image 0 got pixels of image 7 inside the box
        lam = 1.0 - pasted.mean()
        assert float(targets[0, labels[0]]) == pytest.approx(lam, abs=1e-6) or labels[0] == labels[7]


def test_bce_follows_timm_smoothing_and_threshold():
    from reszoo.train.loop import per_example_loss

    logits = np.array([[2.0, -1.0, 0.5]], "float32")
    soft = np.array([[0.7, 0.1, 0.2]], "float32")
    loss = float(per_example_loss(tf.constant(soft), tf.constant(logits), 3, 0.0, "bce", threshold=0.15)[0])
    targets = np.array([1.0, 0.0, 1.0])
    expected = np.mean(np.maximum(logits[0], 0) - logits[0] * targets + np.log1p(np.exp(-np.abs(logits[0]))))
    assert loss == pytest.approx(expected, rel=1e-6)
    smoothed = float(per_example_loss(tf.constant([0]), tf.constant(logits), 3, 0.3, "bce")[0])
    targets = np.array([0.8, 0.1, 0.1])  # 1 - 0.3 + 0.1, 0.3 / 3
    expected = np.mean(np.maximum(logits[0], 0) - logits[0] * targets + np.log1p(np.exp(-np.abs(logits[0]))))
    assert smoothed == pytest.approx(expected, rel=1e-6)


def test_ema_shadow_follows_the_closed_form_and_swaps_back():
    from reszoo.train.ema import EmaWeights

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, use_bias=False)])
    kernel = model.trainable_variables[0]
    kernel.assign([[1.0], [1.0]])
    ema = EmaWeights(model, decay=0.5)
    for value in (3.0, 5.0):
        kernel.assign([[value], [value]])
        tf.function(ema.update)()
    expected = 0.5 * (0.5 * 1.0 + 0.5 * 3.0) + 0.5 * 5.0  # 3.5
    with ema.swapped():
        np.testing.assert_allclose(kernel.numpy(), [[expected], [expected]])
    np.testing.assert_allclose(kernel.numpy(), [[5.0], [5.0]])


def test_train_with_a_recipe_and_overrides(run_cli, tmp_path):
    done = run_cli("train", "resnet20", "--recipe", "cifar", "--data", "digits", "--width", "4", "--epochs", "1",
                   "--batch-size", "16", "--steps-per-epoch", "2", "--mixup", "0.2", "--ema", "0.99",
                   "--output", tmp_path / "run")
    assert done.returncode == 0, done.stderr[-3000:]
    settings = json.loads((tmp_path / "run" / "checkpoints" / "run.json").read_text())["settings"]
    assert settings["recipe"] == "cifar" and settings["momentum"] == 0.9 and settings["nesterov"] is False
    assert settings["weight_decay"] == 1e-4 and settings["schedule"] == "step" and settings["lr"] == 0.1
    assert settings["epochs"] == 1 and settings["batch_size"] == 16 and settings["mixup"] == 0.2
    record = json.loads((tmp_path / "run" / "history.json").read_text())[-1]
    assert 0.0 <= record["val_top5"] <= 1.0 and record["val_top5"] >= record["val_accuracy"]
    assert not math.isnan(record["loss"])
