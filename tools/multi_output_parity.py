"""Per-output parity of a tiny feature-map backbone at every format and precision (the multi-output gate figures).

Builds a 3-stage backbone from stock layers (conv-BN-ReLU stages at strides 2, 4, 8; the feature maps are the
outputs), trained a few epochs on the embedded digits through a pooled classifier head (so activations are
realistic) and, separately, at random init; exports both with `export.pipeline.export_model` to TFLite
fp32/fp16/dynamic/int8/int16x8 and ONNX fp32/int8/dynamic, and prints each output's max |error| / range and
SQNR (dB, all held-out samples, and the worst sample) per artifact, plus the CPU's int8 ISA flags.

With --resnet20 it also measures reszoo's resnet20 (width 16, trained 4 epochs): its three stage outputs
and its class scores, one model (`reszoo` is imported only then; `export` never imports it).

Example:
    $ python tools/multi_output_parity.py --output runs/multi_output   # writes figures.json there
    $ python tools/multi_output_parity.py --resnet20
"""
import argparse
import json
import os
import tempfile

STAGES = ((2, 8), (2, 16), (2, 32))  # (stride, channels) per stage: feature maps at strides 2, 4, 8


def backbone(seed=0, image_size=32, classes=10):
    """(feature model: image -> [stage 1, 2, 3 maps], training model: image -> class probabilities), shared weights."""
    import keras

    keras.utils.set_random_seed(seed)
    image = keras.Input((image_size, image_size, 3), name="image")
    x, features = image, []
    for stride, channels in STAGES:
        x = keras.layers.Conv2D(channels, 3, strides=stride, padding="same", use_bias=False)(x)
        x = keras.layers.BatchNormalization(momentum=0.9)(x)
        x = keras.layers.ReLU()(x)
        x = keras.layers.Conv2D(channels, 3, padding="same", use_bias=False)(x)
        x = keras.layers.BatchNormalization(momentum=0.9)(x)
        x = keras.layers.ReLU()(x)
        features.append(x)
    head = keras.layers.Dense(classes, activation="softmax")(keras.layers.GlobalAveragePooling2D()(x))
    return keras.Model(image, features, name="backbone"), keras.Model(image, head, name="classifier")


def train(classifier, epochs=6, image_size=32):
    """Fit the classifier head (and with it the backbone) on the digits train split; returns held-out accuracy."""
    import keras

    from export.data import sources
    from export.data.preprocess import make_spec, normalize

    train_split, held_out = sources.split(sources.load("digits", (image_size, image_size)))
    spec = make_spec((image_size, image_size))
    classifier.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    classifier.fit(normalize(train_split.x, spec), train_split.y, epochs=epochs, batch_size=32, verbose=0)
    return float(classifier.evaluate(normalize(held_out.x, spec), held_out.y, verbose=0)[1])


def resnet20_stages(image_size=32):
    """reszoo resnet20 (width 16) trained on digits, as image -> [conv2, conv3, conv4 stage outputs, class scores]."""
    import keras

    import reszoo

    keras.utils.set_random_seed(0)
    model = reszoo.create_model("resnet20", width=16, input_shape=(image_size, image_size, 3), num_classes=10)
    accuracy = train(model, epochs=4, image_size=image_size)
    stages = [model.get_layer(f"conv{i}_block3_out").output for i in (2, 3, 4)]
    return keras.Model(model.input, stages + [model.output], name="resnet20_stages"), accuracy


ROWS = (("tflite", ("fp32", "fp16", "dynamic", "int8", "int16x8")), ("onnx", ("fp32", "int8", "dynamic")))


def export_all(model, output_dir):
    """Export `model` to every row of ROWS (no latency runs); returns the ExportResult."""
    from export.pipeline import export_model

    artifacts = []
    for fmt, precisions in ROWS:
        result = export_model(model, formats=[fmt], precisions=list(precisions), data="digits",
                              output_dir=os.path.join(output_dir, fmt), latency_runs=0, show_progress=False,
                              notify=lambda message: None)
        artifacts += [a for a in result.artifacts if a["format"] == fmt]
    return artifacts


def figures(artifacts):
    """{file: {output: {kind, max_rel_err, sqnr_db, min_sample_sqnr_db (features), top1_agreement (class scores),
    passed}}} of the exported artifacts."""
    keys = ("kind", "max_rel_err", "sqnr_db", "min_sample_sqnr_db", "top1_agreement", "passed")
    return {a["file"]: {name: {key: m.get(key) for key in keys}
                        for name, m in a["parity"]["outputs"].items()} for a in artifacts}


def _cell(name, m):
    """One output's figures on one line."""
    extra = (f"worst sample {m['min_sample_sqnr_db']:.1f} dB" if m["kind"] == "features"
             else f"top-1 {m['top1_agreement']:.3f}")
    return f"{name}: rel {m['max_rel_err']:.1e} SQNR {m['sqnr_db']:.1f} dB ({extra}){'' if m['passed'] else ' FAIL'}"


def main():
    from export.core.cpu import cpu_facts

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=None, help="where figures.json goes [printed only]")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--resnet20", action="store_true", help="also measure reszoo's resnet20 stage outputs")
    args = parser.parse_args()
    results = {"machine": cpu_facts()}
    states = ("trained", "random_init") + (("resnet20",) if args.resnet20 else ())
    with tempfile.TemporaryDirectory() as work:
        for state in states:
            if state == "resnet20":
                features, results["resnet20_accuracy"] = resnet20_stages()
            else:
                features, classifier = backbone()
            if state == "trained":
                results["trained_accuracy"] = train(classifier, args.epochs)
            results[state] = figures(export_all(features, os.path.join(work, state)))
    for state in states:
        print(f"== {state}")
        for file, outputs in results[state].items():
            print(f"{file:28s} " + "  ".join(_cell(name, m) for name, m in outputs.items()))
    print(json.dumps(results["machine"]))
    if args.output:
        from export.core.files import write_json

        os.makedirs(args.output, exist_ok=True)
        write_json(os.path.join(args.output, "figures.json"), results)


if __name__ == "__main__":
    main()
