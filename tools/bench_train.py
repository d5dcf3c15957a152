"""Training throughput: reszoo's custom tf.distribute loop vs keras.applications.ResNet50 + model.fit.

Both train ResNet-50 (reszoo's `resnet50`, which has keras.applications' layout, and
`keras.applications.ResNet50` itself) with SGD on the SAME synthetic images, in the same process on the same
box. Each side runs two epochs of `--steps` steps; the second epoch is timed (the first includes tracing).
The reszoo side goes through `reszoo.train.fit` (tf.data pipeline + strategy.run loop, default strategy);
evaluation time is excluded from its images/s, as Keras excludes nothing else either (no validation data).

CPU boxes: use a small image size / batch (defaults 64 px, batch 8) and say so when quoting the numbers.

Example:
    $ python tools/bench_train.py --image-size 64 --batch-size 8 --steps 8
"""
import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from export.datasets import LabeledImages  # noqa: E402
from reszoo.train import fit  # noqa: E402


def synthetic_images(count, image_size, classes, seed=0):
    """Random [0, 255] images and labels, the same for both contestants."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 255, (count, image_size, image_size, 3)).astype("float32")
    return LabeledImages(x, (np.arange(count) % classes).astype("int64"), [str(c) for c in range(classes)], "synthetic")


class EpochTimer(keras.callbacks.Callback):
    """Wall time of every epoch of model.fit."""

    def on_train_begin(self, logs=None):
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.started)


def keras_fit_images_per_second(data, batch_size, steps, classes, jit_compile="auto"):
    """keras.applications.ResNet50 + compile + model.fit; images/s of the second epoch."""
    keras.utils.set_random_seed(0)
    model = keras.applications.ResNet50(weights=None, input_shape=data.x.shape[1:], classes=classes)
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], jit_compile=jit_compile)
    timer = EpochTimer()
    x, y = data.x[: batch_size * steps] / 255.0, data.y[: batch_size * steps]
    model.fit(x, y, batch_size=batch_size, epochs=2, shuffle=True, verbose=0, callbacks=[timer])
    return batch_size * steps / timer.seconds[-1]


def reszoo_images_per_second(data, batch_size, steps, xla=False):
    """reszoo.train.fit on reszoo's resnet50; images/s of the second epoch (training only)."""
    result = fit("resnet50", data, epochs=2, batch_size=batch_size, steps_per_epoch=steps, strategy="default", xla=xla,
                 lr=0.01, weight_decay=0.0, augment="none", image_size=data.x.shape[1:3],
                 model_kwargs={"weights": None}, verbose=False)
    return result.history[-1]["images_per_second"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--classes", type=int, default=10)
    args = parser.parse_args()
    # reszoo.fit holds out 20 % for validation: give it enough images for `steps` training batches
    data = synthetic_images(int(args.batch_size * args.steps / 0.8) + args.classes, args.image_size, args.classes)
    figures = {name: run() for name, run in (
        ("reszoo train loop (strategy.run)", lambda: reszoo_images_per_second(data, args.batch_size, args.steps)),
        ("reszoo train loop, --xla", lambda: reszoo_images_per_second(data, args.batch_size, args.steps, True)),
        ("keras ResNet50 + fit (jit_compile=auto)",
         lambda: keras_fit_images_per_second(data, args.batch_size, args.steps, args.classes)),
        ("keras ResNet50 + fit (jit_compile=False)",
         lambda: keras_fit_images_per_second(data, args.batch_size, args.steps, args.classes, False)),
    )}
    print(f"ResNet-50, {args.image_size}x{args.image_size}, batch {args.batch_size}, {args.steps} timed steps, "
          f"CPU only ({os.cpu_count()} cores visible)")
    for name, value in figures.items():
        print(f"  {name:42s} {value:8.2f} images/s")
    names = list(figures)
    print(f"  ratio reszoo / keras fit, both default  {figures[names[0]] / figures[names[2]]:8.2f}")
    print(f"  ratio reszoo --xla / keras fit (XLA)    {figures[names[1]] / figures[names[2]]:8.2f}")
    print(f"  ratio reszoo / keras fit, both no XLA   {figures[names[0]] / figures[names[3]]:8.2f}")


if __name__ == "__main__":
    main()
