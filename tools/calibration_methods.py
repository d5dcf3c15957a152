"""Calibration methods measured (`export.calibration`): the figures behind the default of `--calibration`.

For each model and each method: TFLite int8, TFLite int16x8 and ONNX int8 are converted from one traced
SavedModel on the pipeline's calibration samples (300 train digits, seed 0), then run on the held-out digits;
printed: top-1 agreement with the float Keras model, output SQNR (dB, pooled over the held-out samples, on the
model's probability outputs) and the conversion time (calibration included), plus the CPU.

Models: `tiny` (the 8-layer width-4 CIFAR ResNet of tests/export/optimize/conftest.py, trained 15 epochs),
`rescaled` (its x1000 channel-rescaled copy, tests/export/optimize/rescaled.py), `resnet20`
(saved_models/resnet20_digits.keras), `resnet50` (random init at 224², export time only: agreement on random
weights says nothing).

Example:
    $ python tools/calibration_methods.py --models tiny rescaled resnet20 --output runs/calibration.json
    $ python tools/calibration_methods.py --models resnet50 --precisions tflite:int8 onnx:int8 --samples 100
"""
import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_ROWS = ("tflite:int8", "tflite:int16x8", "onnx:int8")


def tiny_model():
    """The trained tiny ResNet of tests/export/optimize/conftest.py (same seed, data and epochs)."""
    import keras

    from export.data import sources as datasets
    from export.data.preprocess import make_spec, normalize
    from reszoo.models.cifar import CifarResNet

    train, _ = datasets.split(datasets.load("digits", image_size=(32, 32)))
    keras.utils.set_random_seed(0)
    model = CifarResNet(8, width=4, input_shape=(32, 32, 3), num_classes=10)
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(normalize(train.x, make_spec((32, 32))), train.y, epochs=15, batch_size=32, verbose=0)
    return model


def rescaled_model():
    sys.path.insert(0, ROOT)
    from tests.export.optimize.rescaled import rescaled_chains, rescaled_copy

    model = tiny_model()
    return rescaled_copy(model, rescaled_chains(model))


def resnet20_model():
    from export.core.metadata import load_model

    model, metadata = load_model(os.path.join(ROOT, "saved_models", "resnet20_digits.keras"))
    model.recorded_preprocessing = metadata.get("preprocessing")  # the spec export_model would use
    return model


def resnet50_model():
    import reszoo

    return reszoo.create_model("resnet50", num_classes=10)


MODELS = {"tiny": tiny_model, "rescaled": rescaled_model, "resnet20": resnet20_model, "resnet50": resnet50_model}


def digits_for(model, samples):
    """(calibration samples, held-out x, held-out y) at the model's input size, split as export_model does."""
    from export.data.preprocess import default_spec_for_input
    from export.data.splits import prepare, split_for_spec

    spec = getattr(model, "recorded_preprocessing", None) or default_spec_for_input(tuple(model.input_shape[1:]))
    train, held_out = split_for_spec("digits", spec)
    order = np.random.default_rng(0).permutation(len(train.x))
    return prepare(train.take(np.sort(order[:samples])), spec), prepare(held_out, spec), held_out.y


def measure(model, rows, methods, samples, verify, work):
    from export import formats
    from export.converters import ConvertContext
    from export.quantreport.stats import ErrorStats
    from export.runtimes import KerasRunner, load_runner
    from export.serving_graph import to_saved_model

    calibration, x, y = digits_for(model, samples)
    x, y = x[:verify], y[:verify]
    saved_model = to_saved_model(model, os.path.join(work, "saved_model"))["path"]
    reference = KerasRunner.from_model(model).predict(x) if verify else None
    figures, shared = [], {}  # shared: the fp32 ONNX graph, converted once, before any timing
    if any(row.startswith("onnx:") for row in rows):
        formats.convert(formats.variant("onnx", "fp32"), ConvertContext(saved_model, work, model, cache=shared),
                        os.path.join(work, "fp32.onnx"))
    for method in methods:
        for row in rows:
            fmt, precision = row.split(":")
            context = ConvertContext(saved_model, work, model, calibration, calibration_method=method, cache=shared)
            path = os.path.join(work, f"{method}_{precision}.{fmt}")
            started = time.perf_counter()
            formats.convert(formats.variant(fmt, precision), context, path)
            seconds = time.perf_counter() - started
            entry = {"method": method, "row": row, "convert_s": round(seconds, 2)}
            if verify:
                outputs = load_runner(path, fmt, threads=2).predict(x)
                stats = ErrorStats()
                stats.add(reference, outputs)
                entry.update(top1_agreement=round(float(np.mean(outputs.argmax(-1) == reference.argmax(-1))), 4),
                             accuracy=round(float(np.mean(outputs.argmax(-1) == y)), 4),
                             sqnr_db=round(stats.sqnr_db(), 2))
            print(json.dumps(entry), flush=True)
            figures.append(entry)
    return figures


def main(argv=None):
    from export.calibration import METHODS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["tiny", "rescaled", "resnet20"], choices=list(MODELS))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--precisions", nargs="+", default=list(DEFAULT_ROWS))
    parser.add_argument("--samples", type=int, default=300, help="calibration samples")
    parser.add_argument("--verify", type=int, default=None, help="held-out samples [all; resnet50: 0]")
    parser.add_argument("--output", default=None, help="write figures.json there")
    args = parser.parse_args(argv)
    from export.core.cpu import cpu_facts

    results = {"cpu": cpu_facts()}
    print(json.dumps(results["cpu"]), flush=True)
    for name in args.models:
        verify = args.verify if args.verify is not None else (0 if name == "resnet50" else 100_000)
        with tempfile.TemporaryDirectory() as work:
            print(f"== {name}", flush=True)
            results[name] = measure(MODELS[name](), args.precisions, args.methods, args.samples, verify, work)
    if args.output:
        os.makedirs(args.output, exist_ok=True)
        with open(os.path.join(args.output, "figures.json"), "w") as handle:
            json.dump(results, handle, indent=1)


if __name__ == "__main__":
    main()
