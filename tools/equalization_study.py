"""Int8 with and without cross-layer equalization: output SQNR, agreement and the worst layers (docs/quantization.md figures).

Exports MODEL (a .keras file or a registered name) to TFLite and ONNX int8 twice, `--no-equalize
--no-fallback` and with equalization (the default, fallback off so the figures are equalization's alone), and
prints per artifact: top-1 agreement, output SQNR, and the 3 worst layers alone with their SQNR (from
quant_report.json), plus the CPU's int8 ISA flags.

Example:
    $ python tools/equalization_study.py saved_models/resnet20_digits.keras
    $ python tools/equalization_study.py resnet50 --verify-samples 100 --calibration-samples 100
"""
import argparse
import json
import os
import tempfile


def export_once(model, name, output_dir, equalize, data, verify_samples, calibration_samples):
    from export.pipeline import export_model

    result = export_model(model, formats=["tflite", "onnx"], precisions=["int8"], data=data, output_dir=output_dir,
                          latency_runs=0, verify_samples=verify_samples, calibration_samples=calibration_samples,
                          equalize=equalize, fallback=False, show_progress=False, model_name=name,
                          notify=lambda message: None)
    with open(os.path.join(output_dir, "quant_report.json")) as handle:
        reports = {r["artifact"]: r for r in json.load(handle)["artifacts"]}
    rows = []
    for artifact in result.artifacts:
        if artifact["precision"] != "int8":
            continue
        report = reports[artifact["file"]]
        worst = ", ".join(f"{row['layer']} {row['sqnr_db']:.1f}" for row in report["rows"][:3])
        rows.append({"artifact": artifact["file"], "equalized": equalize,
                     "agreement": artifact["parity"].get("top1_agreement"),
                     "output_sqnr_db": report["output"]["sqnr_db"], "worst_layers": worst})
    return rows, result.manifest["quantization"]["equalization"]


def resolve(model):
    if model.endswith(".keras"):
        return model, os.path.basename(model)[:-len(".keras")]
    import reszoo

    return reszoo.create_model(model), model


def main():
    from export.core.cpu import cpu_facts

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--data", default="digits")
    parser.add_argument("--verify-samples", type=int, default=None)
    parser.add_argument("--calibration-samples", type=int, default=300)
    args = parser.parse_args()
    model, name = resolve(args.model)
    table = []
    with tempfile.TemporaryDirectory() as work:
        for equalize in (False, True):
            rows, record = export_once(model, name, os.path.join(work, f"eq{int(equalize)}"), equalize, args.data,
                                       args.verify_samples, args.calibration_samples)
            table += rows
            print(f"equalization: {record}")
    print(f"CPU: {cpu_facts()}")
    print("| artifact | equalized | top-1 agreement | output SQNR dB | 3 worst layers alone (dB) |")
    print("|---|---|---|---|---|")
    for row in table:
        print(f"| {row['artifact']} | {row['equalized']} | {row['agreement']:.2%} | {row['output_sqnr_db']:.1f} | "
              f"{row['worst_layers']} |")


if __name__ == "__main__":
    main()
