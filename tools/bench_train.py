"""Training throughput: reszoo's custom tf.distribute loop vs keras.applications.ResNet50 + model.fit.

Both train ResNet-50 (reszoo's `resnet50`, which has keras.applications' layout, and
`keras.applications.ResNet50` itself) with SGD (momentum 0.9) on the SAME synthetic images, in one process on
the same box. The reszoo side is the loop `reszoo train` runs: `train_dataset` (tf.data, normalize, no
augmentation) -> `distribute_datasets_from_function` -> `make_train_step` (`strategy.run` + GradientTape). The
Keras side is `compile` + `model.fit` on numpy arrays. Every contestant is warmed up once (tracing/compiling),
then timed for `--rounds` rounds of `--steps` steps, contestants interleaved round by round so that load from
other processes hits all of them alike; the median round is reported.

Keras 3 `compile` defaults to `jit_compile="auto"` (XLA on); reszoo's `--xla` is off by default, so both
pairings are printed. CPU boxes: use a small image size / batch (defaults 64 px, batch 8) and say so.

Example:
    $ python tools/bench_train.py --image-size 64 --batch-size 8 --steps 4 --rounds 3
"""
import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from export.data.sources import LabeledImages  # noqa: E402
from reszoo import create_model  # noqa: E402
from reszoo.train.data import default_spec, train_dataset  # noqa: E402
from reszoo.train.loop import make_train_step  # noqa: E402
from reszoo.train.optim import make_optimizer  # noqa: E402


def synthetic_images(count, image_size, classes, seed=0):
    """Random [0, 255] images and labels, the same for every contestant."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 255, (count, image_size, image_size, 3)).astype("float32")
    return LabeledImages(x, (np.arange(count) % classes).astype("int64"), [str(c) for c in range(classes)], "synthetic")


def reszoo_round(data, batch_size, steps, classes, xla, keras_model=False):
    """A function running `steps` steps of reszoo's loop (default strategy) on a fresh epoch of `data`.

    `keras_model=True` trains keras.applications.ResNet50 itself with reszoo's loop (isolates loop vs model).
    """
    strategy = tf.distribute.get_strategy()
    if keras_model:
        model = keras.applications.ResNet50(weights=None, input_shape=data.x.shape[1:], classes=classes)
    else:
        model = create_model("resnet50", input_shape=data.x.shape[1:], num_classes=classes, weights=None)
    optimizer = make_optimizer("sgd", lr=0.01, schedule="cosine", total_steps=10_000)
    optimizer.build(model.trainable_variables)
    step = make_train_step(strategy, model, optimizer, num_classes=classes, global_batch=batch_size, xla=xla)
    spec = default_spec("synthetic", data.x.shape[1:3])
    epoch = iter(range(10_000))

    def run():
        batches = strategy.distribute_datasets_from_function(lambda context: train_dataset(
            data, spec, global_batch=batch_size, epoch=next(epoch), seed=0, augment="none", steps=steps,
            input_context=context))
        keep_going = tf.constant(0, tf.int32)  # the preemption flag `reszoo train` passes
        for batch in batches:
            loss, _, _ = step(batch, keep_going)
        float(loss)

    return run


def keras_fit_round(data, batch_size, steps, classes, jit_compile):
    """A function running one `model.fit` epoch of `steps` steps of keras.applications.ResNet50."""
    model = keras.applications.ResNet50(weights=None, input_shape=data.x.shape[1:], classes=classes)
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], jit_compile=jit_compile)
    x, y = data.x[: batch_size * steps] / 255.0, data.y[: batch_size * steps]

    def run():
        model.fit(x, y, batch_size=batch_size, epochs=1, shuffle=True, verbose=0)

    return run


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--classes", type=int, default=10)
    args = parser.parse_args()
    keras.utils.set_random_seed(0)
    data = synthetic_images(args.batch_size * args.steps, args.image_size, args.classes)
    shape = (data, args.batch_size, args.steps, args.classes)
    contestants = {
        "reszoo loop (strategy.run), xla off [default]": reszoo_round(*shape, xla=False),
        "reszoo loop (strategy.run), --xla": reszoo_round(*shape, xla=True),
        "keras ResNet50 + fit, jit_compile=auto [default]": keras_fit_round(*shape, jit_compile="auto"),
        "keras ResNet50 + fit, jit_compile=False": keras_fit_round(*shape, jit_compile=False),
        "reszoo loop on keras ResNet50, xla off": reszoo_round(*shape, xla=False, keras_model=True),
    }
    for run in contestants.values():
        run()  # warm-up: tracing and XLA compilation are not timed
    seconds = {name: [] for name in contestants}
    for _ in range(args.rounds):
        for name, run in contestants.items():
            started = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - started)
    rate = {name: args.batch_size * args.steps / statistics.median(s) for name, s in seconds.items()}
    print(f"ResNet-50 training, {args.image_size}x{args.image_size}, batch {args.batch_size}, {args.steps} steps x "
          f"{args.rounds} interleaved rounds (median), CPU only, {os.cpu_count()} cores visible")
    for name, value in rate.items():
        print(f"  {name:50s} {value:8.2f} images/s")
    ours, ours_xla, theirs, theirs_plain, loop_on_keras = rate.values()
    print(f"  ratio reszoo / keras fit, both defaults        {ours / theirs:6.2f}")
    print(f"  ratio reszoo --xla / keras fit (XLA)           {ours_xla / theirs:6.2f}")
    print(f"  ratio reszoo / keras fit, both without XLA     {ours / theirs_plain:6.2f}")
    print(f"  ratio reszoo loop / fit, same keras model, no XLA {loop_on_keras / theirs_plain:6.2f}")


if __name__ == "__main__":
    main()
