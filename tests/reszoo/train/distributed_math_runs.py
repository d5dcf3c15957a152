"""Helper process of test_distributed_math.py: train the same few steps under one strategy, save every variable.

    python distributed_math_runs.py OUT default|mirrored            # 1 replica | 2 replicas on 2 logical CPUs
    TF_CONFIG=... python distributed_math_runs.py OUT multi-worker INDEX   # one of the 2 localhost workers

Every case (CASES x its precisions) goes through the public `reszoo.train.fit` (epochs=1, steps_per_epoch=STEPS,
in memory, augment="none", seed 0) and writes OUT/<case>-<precision>-<strategy>[-<index>].npz: every model
variable in `model.weights` order after training (w000...) and before (i000...), their paths and trainable flags,
the largest difference between the mirrored replicas' copies (`spread`), the optimizer's final loss scale and
iteration count (applied steps; a mixed_float16 step with non-finite gradients is skipped), and the mean loss. A
case that raises writes OUT/<stem>.error (its traceback) instead, and the next case still runs.

Cases: "plain" is a registered conv net without batch norm (L2 kernel regularization, so the 1/replicas scaling of
model.losses is exercised too) on digits: splitting its global batch must not change the math. "twin" is resnet20
(batch norm) on data built so that every per-replica part of every global batch holds the same images as the whole
batch (`twin_data`), so per-replica BN statistics equal the global ones. "bn" is resnet20 on digits, where
per-replica BN statistics (sync BN is off) legitimately change the result.
"""
import os
import sys
import traceback

import numpy as np

STEPS = 4
GLOBAL_BATCH = 32
SIZE = 16
TINY = "distmath_tiny_conv"
TINY_L2 = 1e-3
# case -> (model name, fit options); every case also gets COMMON
CASES = {
    "plain": (TINY, {}),
    "twin": ("resnet20", {"model_kwargs": {"width": 4}, "lr": 0.01}),
    "bn": ("resnet20", {"model_kwargs": {"width": 4}, "lr": 0.01}),
}
PRECISIONS = {"plain": ("float32", "mixed_float16"), "twin": ("float32", "mixed_float16"), "bn": ("float32",)}
COMMON = dict(epochs=1, batch_size=GLOBAL_BATCH, steps_per_epoch=STEPS, augment="none", image_size=SIZE, seed=0,
              output_dir=None, verbose=False)


def tiny_model(input_shape=(SIZE, SIZE, 3), num_classes=10, name=TINY):
    """A tiny conv net without batch norm (or any other layer that couples the examples of a batch), built under
    the global dtype policy (softmax in float32, as mixed precision wants)."""
    import keras

    l2 = keras.regularizers.L2(TINY_L2)
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(8, 3, activation="relu", kernel_regularizer=l2, name="conv_a")(inputs)
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu", kernel_regularizer=l2, name="conv_b")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dense(num_classes, kernel_regularizer=l2, name="logits")(x)
    outputs = keras.layers.Activation("softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=name)


def register_tiny():
    """Register `tiny_model` (in this helper process only), so that fit can rebuild it under mixed_float16 (fit
    takes only registered names with a mixed-precision policy)."""
    from reszoo.models.registry import register_model

    register_model(TINY, family="test", paper="none", default_input=(SIZE, SIZE, 3), default_classes=10)(tiny_model)


def twin_data():
    """(train, held_out) LabeledImages whose epoch-0 order makes every global batch of 32 images
    [a, a, b, b, ..., h, h, a, a, b, b, ..., h, h] (8 distinct digits, each 4 times; new digits every step).

    Mirrored replicas take the contiguous halves, multi-worker input pipelines the even/odd positions
    (`data.train_dataset` shards interleaved): either way each part holds each image exactly twice, so its batch
    mean and (biased) variance equal the whole batch's, and batch norm sees the same statistics at 1 or 2 replicas.
    """
    from export.data.sources import LabeledImages
    from reszoo.train.data import epoch_order, load_data

    digits = load_data("digits", (SIZE, SIZE))
    distinct = GLOBAL_BATCH // 4
    picks = np.arange(STEPS * distinct).reshape(STEPS, distinct)
    wanted = np.concatenate([np.tile(np.repeat(step, 2), 2) for step in picks])  # the epoch's image sequence
    order = epoch_order(len(wanted), seed=0, epoch=0)  # fit's epoch-0 permutation: it reads x[order]
    x, y = np.empty((len(wanted), SIZE, SIZE, 3), "float32"), np.empty(len(wanted), "int64")
    x[order], y[order] = digits.x[wanted], digits.y[wanted]
    train = LabeledImages(x, y, digits.class_names, "twin-digits")
    return train, LabeledImages(digits.x[-64:], digits.y[-64:], digits.class_names, "twin-held-out")


def one_strategy_per_process():
    """Build each strategy once per process and hand the same object to every fit, as a real program does.

    A second MultiWorkerMirroredStrategy (or MirroredStrategy over CPUs, which all-reduces with collective ops)
    starts its collective instance keys again while TensorFlow's process-wide collective runtime remembers the
    shapes it saw under them: the next model's all-reduce then fails with "Shape mismatch in the collective
    instance".
    """
    from reszoo.train import strategies

    cache = {}

    def once(name, builder):
        def build():
            if name not in cache:
                cache[name] = builder()
            return cache[name]

        return build

    for name, builder in list(strategies.BUILDERS.items()):
        strategies.BUILDERS[name] = once(name, builder)


def spy_builds():
    """Record what each fit builds and TrainResult does not return: the model's initial weights (how far training
    moved them) and the optimizer (final loss scale, iterations)."""
    import importlib

    from reszoo.train import optim

    fit_module = importlib.import_module("reszoo.train.fit")
    built, make_optimizer, build_model = {}, optim.make_optimizer, fit_module.build_model

    def make(*args, **kwargs):
        built["optimizer"] = make_optimizer(*args, **kwargs)
        return built["optimizer"]

    def build(*args, **kwargs):
        model = build_model(*args, **kwargs)
        built["initial"] = [np.asarray(w.numpy()) for w in model.weights]
        return model

    optim.make_optimizer, fit_module.build_model = make, build
    return built


def replica_spread(weight):
    """Largest difference between the per-replica copies of a (mirrored) variable; 0 for a plain one."""
    copies = [np.asarray(v.numpy()) for v in getattr(weight.value, "_values", [weight.value])]
    return max(float(np.abs(c - copies[0]).max()) for c in copies)


def run_case(case, precision, strategy, built):
    from reszoo.train import fit

    name, options = CASES[case]
    train, held_out = twin_data() if case == "twin" else ("digits", None)
    result = fit(name, train, val_data=held_out, strategy=strategy, **{**COMMON, **options},
                 mixed_precision=None if precision == "float32" else precision)
    assert result.steps == STEPS and result.replicas == (1 if strategy == "default" else 2), result
    optimizer, weights = built["optimizer"], result.model.weights
    trainable = {id(w) for w in result.model.trainable_weights}
    arrays = {f"w{i:03d}": np.asarray(w.numpy()) for i, w in enumerate(weights)}
    arrays.update({f"i{i:03d}": w for i, w in enumerate(built["initial"])})
    scale = optimizer.dynamic_scale.numpy() if hasattr(optimizer, "dynamic_scale") else 1.0
    return {**arrays, "paths": np.array([w.path for w in weights]),
            "trainable": np.array([id(w) in trainable for w in weights]),
            "spread": np.float64(max(replica_spread(w) for w in weights)), "loss_scale": np.float64(scale),
            "iterations": np.int64(optimizer.iterations.numpy()), "loss": np.float64(result.history[-1]["loss"])}


def main():
    out, strategy = sys.argv[1], sys.argv[2]
    suffix = f"-{sys.argv[3]}" if strategy == "multi-worker" else ""
    if strategy == "mirrored":  # before TensorFlow initializes: 2 logical CPU devices to mirror over
        import tensorflow as tf

        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    register_tiny()
    one_strategy_per_process()
    built = spy_builds()
    for case, precisions in PRECISIONS.items():
        for precision in precisions:
            stem = os.path.join(out, f"{case}-{precision}-{strategy}{suffix}")
            try:
                np.savez(stem + ".npz", **run_case(case, precision, strategy, built))
            except Exception:  # recorded for the test, which names the failing case; the next case still runs
                with open(stem + ".error", "w") as handle:
                    handle.write(traceback.format_exc())
    print("finished", strategy, flush=True)


if __name__ == "__main__":
    main()
