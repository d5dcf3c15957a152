"""Never hand back a QAT model worse than post-training int8 (PTQ) of the same model.

After QAT fine-tuning, two held-out accuracies are compared:
- QAT: the QAT tf_keras model's own accuracy. Its fake-quant ops already compute in int8 ranges and
  weights, so this is what its int8 artifacts compute (each of them is then gated against it, within the
  int8 gate), and it costs one prediction pass, no conversion.
- PTQ: the measured accuracy of a real full-int8 TFLite file of the pre-QAT model, calibrated the way the
  export would calibrate it (`ptq_int8_accuracy`): what the user would get without --qat.
The QAT model is kept when its accuracy is not below PTQ's; otherwise the pre-QAT model is handed on and
the export quantizes it post-training ("QAT 88.1 % < PTQ 90.2 %: kept PTQ").

Example:
    >>> chosen, choice = choose_qat_or_ptq("pre", "qat", lambda m: {"qat": 0.881}[m], lambda m: 0.902)
    >>> chosen, choice["note"]
    ('pre', 'QAT 88.1 % < PTQ 90.2 %: kept PTQ')
"""
import os
import tempfile



def choose_qat_or_ptq(pre_qat, qat_model, evaluate, ptq_accuracy):
    """(model to hand on, {"kept": "qat"|"ptq", "qat_accuracy", "ptq_accuracy", "accuracy", "note"})."""
    qat = evaluate(qat_model) if evaluate is not None else None
    ptq = ptq_accuracy(pre_qat) if ptq_accuracy is not None and qat is not None else None
    if qat is None or ptq is None:
        return qat_model, {"kept": "qat", "qat_accuracy": qat, "ptq_accuracy": None, "accuracy": qat,
                           "note": "QAT kept: not compared with PTQ (no usable labels)"}
    kept_qat = qat >= ptq
    note = (f"QAT {100 * qat:.1f} % {'>=' if kept_qat else '<'} PTQ {100 * ptq:.1f} %: "
            f"kept {'QAT' if kept_qat else 'PTQ'}")
    return (qat_model if kept_qat else pre_qat), {"kept": "qat" if kept_qat else "ptq", "qat_accuracy": qat,
                                                  "ptq_accuracy": ptq, "accuracy": qat if kept_qat else ptq,
                                                  "note": note}


def ptq_int8_accuracy(model, x_calibration, x, y, work_dir=None):
    """Held-out accuracy of the full-int8 TFLite file of `model` (calibrated on `x_calibration`), or None
    when the labels cannot be scored against its outputs."""
    from export.converters import tflite
    from export.core.files import write_bytes
    from export.runtimes import load_runner
    from export.serving_graph import to_saved_model
    from export.gates import top1_accuracy

    with tempfile.TemporaryDirectory(dir=work_dir, prefix="ptq_baseline_") as directory:
        saved_model = to_saved_model(model, os.path.join(directory, "saved_model"))["path"]
        path = write_bytes(os.path.join(directory, "ptq_int8.tflite"),
                           tflite.convert(saved_model, "int8", calibration=x_calibration))
        outputs = load_runner(path, "tflite").predict(x)
    return top1_accuracy(y, outputs)
