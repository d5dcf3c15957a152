"""Why QAT damaged a realistic model: held-out accuracy of QAT with each fix on or off, and PTQ int8 beside it.

For a .keras classifier and an .npz/class-folder data source (its train split fine-tunes, its held-out split
scores), prints one markdown row per (calibrated ranges, frozen BN) combination: the QAT model's own
(fake-quant) held-out accuracy, its last fine-tuning epoch's train accuracy, and the float / PTQ int8
TFLite accuracies of the same model for comparison. `--samples` limits the fine-tuning images (the issue's
run had 676).

Example:
    $ .venv/bin/python tools/qat_study.py run/final.keras --data hard_digits.npz --samples 676
"""
import argparse
import itertools
import os
import tempfile

import numpy as np


def accuracy(outputs, labels):
    return round(100 * float(np.mean(np.asarray(outputs).argmax(-1) == labels)), 2)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--data", required=True)
    parser.add_argument("--samples", type=int, default=None, help="fine-tuning images [the whole train split]")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    args = parser.parse_args()

    import tf_keras

    from export.core.metadata import load_model
    from export.data import sources as datasets
    from export.data.preprocess import normalize
    from export.optimize import as_twin
    from export.optimize.qat import quantize_aware_train
    from export.optimize.qat_choice import ptq_int8_accuracy

    model, metadata = load_model(args.model)
    spec = metadata["preprocessing"]
    train, held_out = datasets.split(datasets.load(args.data, spec["input_size"], spec["channels"]))
    x, y = normalize(train.x, spec)[:args.samples], train.y[:args.samples]
    x_held, y_held = normalize(held_out.x, spec), held_out.y
    with tempfile.TemporaryDirectory() as work:
        ptq = ptq_int8_accuracy(as_twin(model), x[:300], x_held, y_held, work)
    print(f"{os.path.basename(args.model)}: float {accuracy(model.predict(x_held, verbose=0), y_held)} %, "
          f"PTQ int8 TFLite {100 * ptq:.2f} %; QAT on {len(x)} images, {args.epochs} epochs, "
          f"Adam {args.learning_rate:g}\n")
    print("| calibrated ranges | frozen BN | QAT held-out % | QAT train % |\n|---|---|---|---|")
    for calibrate, freeze in itertools.product((False, True), repeat=2):
        tf_keras.utils.set_random_seed(0)
        qat_model, report = quantize_aware_train(
            as_twin(model), x, y, args.epochs, 32, args.learning_rate,
            fixes={"calibrate_ranges": calibrate, "freeze_batch_norm": freeze})
        print(f"| {calibrate} | {freeze} | {accuracy(qat_model.predict(x_held, verbose=0), y_held)} | "
              f"{100 * report['fine_tune']['accuracy']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
