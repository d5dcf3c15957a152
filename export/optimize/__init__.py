"""Optimizations before conversion: magnitude pruning, weight clustering, quantization-aware training.

`apply` rebuilds the Keras-3 model as a tf_keras twin (`export.twin`), because tfmot only accepts tf_keras
models, then runs the requested steps in the order prune -> cluster -> QAT, each fine-tuned on the
training data; later steps preserve what earlier ones did (sparsity-preserving clustering; QAT re-applies
the pruning zeros after every batch and uses the cluster-preserving scheme after clustering). The
returned tf_keras model converts to TFLite/ONNX through a SavedModel; a QAT model holds fake-quant ops,
so its TFLite int8 takes its ranges from training and its ONNX export has QDQ nodes.
tfmot is imported lazily and TF_USE_LEGACY_KERAS is left as it was.

Example:
    >>> import keras, numpy as np
    >>> inputs = keras.Input((8, 8, 3))
    >>> x = keras.layers.Conv2D(8, 3, name="conv")(inputs)
    >>> outputs = keras.layers.Dense(2, activation="softmax", name="fc")(keras.layers.Flatten()(x))
    >>> model = keras.Model(inputs, outputs)
    >>> data = (np.random.rand(64, 8, 8, 3).astype("float32"), np.arange(64) % 2)
    >>> optimized, report = apply(model, {"prune": 0.5, "finetune_epochs": 2, "batch_size": 16}, data)
    >>> report["prune"]["overall_sparsity"]
    0.5
"""
from export.core.errors import UserError
from export.optimize.cluster import cluster
from export.optimize.prune import STRUCTURES, kernel_sparsity, prune
from export.optimize.gate import step_name
from export.optimize.qat import quantize_aware_train
from export.optimize.qat_choice import choose_qat_or_ptq

DEFAULT_OPTIONS = {"prune": None, "prune_structure": None, "qat": False, "cluster": None, "finetune_epochs": 2,
                   "batch_size": 32, "learning_rate": None}
# Adam learning rate per step when options give none: pruning must recover from removed weights (tfmot's
# guides fine-tune with Adam's default 1e-3); clustering and QAT only adjust a converged model.
STEP_LEARNING_RATES = {"prune": 1e-3, "cluster": 1e-4, "qat": 1e-4}
MIN_FINETUNE_STEPS = 2
OPTIMIZATION_KEYS = ("prune", "prune_structure", "qat", "cluster")  # any of them set: the model is optimized


def requested(options):
    """True when `options` (or None) ask for any optimization: requested({"qat": True}) -> True.

    The one "is optimizing" decision (the export pipeline asks it too)."""
    return any((options or {}).get(key) for key in OPTIMIZATION_KEYS)


def check_options(options, train_data):
    """Raise UserError for the first unusable option (or missing data)."""
    if train_data is None or train_data[0] is None or train_data[1] is None or len(train_data[0]) == 0:
        raise UserError("--prune/--qat/--cluster need --data for fine-tuning (labeled images)")
    sparsity, structure = options["prune"], options["prune_structure"]
    if sparsity is not None and not 0.0 < float(sparsity) < 1.0:
        raise UserError(f"--prune {sparsity}: sparsity must be strictly between 0 and 1 (e.g. 0.5)")
    if structure is not None and structure not in STRUCTURES:
        raise UserError(f"--prune-structure {structure}: allowed: {', '.join(STRUCTURES)}")
    if structure is not None and sparsity is not None and float(sparsity) != structure_sparsity(structure):
        raise UserError(f"--prune-structure {structure} fixes the sparsity at {structure_sparsity(structure)}; "
                        f"drop --prune {sparsity} or set it to {structure_sparsity(structure)}")
    clusters = options["cluster"]
    if clusters is not None and (int(clusters) != clusters or clusters < 2):
        raise UserError(f"--cluster {clusters}: the number of clusters must be an integer >= 2")
    steps = options["finetune_epochs"] * -(-len(train_data[0]) // options["batch_size"])
    if steps < MIN_FINETUNE_STEPS:
        raise UserError(f"fine-tuning would run {steps} step(s); give --finetune-epochs/--data for at least "
                        f"{MIN_FINETUNE_STEPS}")


def structure_sparsity(structure):
    zeros, group = STRUCTURES[structure]
    return zeros / group


def final_sparsity(model, report):
    """Overall kernel sparsity of the pruned layers in the final model (after clustering/QAT), or None."""
    if "prune" not in report:
        return None
    return kernel_sparsity(model, list(report["prune"]["layers"]))[1]


def measured_step(step, options, model, evaluate, earlier=()):
    """{"step", "label" (with the earlier steps: "prune 50 % + QAT"), "accuracy" (evaluate(model) or None)}."""
    label = " + ".join([*(s["label"] for s in earlier[-1:]), step_name(step, options)])
    accuracy = evaluate(model) if evaluate is not None and model is not None else None
    return {"step": step, "label": label, "accuracy": accuracy}


def as_twin(model):
    """The tf_keras model to optimize: `model` itself if already tf_keras, else its exact twin."""
    import tf_keras

    from export.twin import to_tf_keras

    return model if isinstance(model, tf_keras.Model) else to_tf_keras(model)


def apply(model, options, train_data, progress=None, evaluate=None, ptq_accuracy=None):
    """Run the requested optimizations; returns (model_for_conversion, report_dict).

    options: {"prune": float|None, "prune_structure": "2:4"|None, "qat": bool, "cluster": int|None,
    "finetune_epochs": int, "batch_size": int, "learning_rate": float|None} (missing keys take DEFAULT_OPTIONS;
    learning_rate None means STEP_LEARNING_RATES).
    train_data: (x preprocessed float32 NHWC, y int labels). progress: optional callable
    progress(description, completed, total), called per fine-tuning batch. evaluate: optional
    evaluate(model) -> held-out accuracy (or None without usable labels), measured after every step into
    report["steps"] (`export.optimize.gate` gates them against the original). ptq_accuracy: optional
    ptq_accuracy(model) -> held-out accuracy of post-training int8 of the pre-QAT model; with both, QAT is kept
    only when its own (fake-quant) accuracy is not below it (`export.optimize.qat_choice`).
    Returns `model` unchanged and {} when nothing is requested. The report holds "finetune_epochs", "qat",
    "overall_sparsity", "clusters", "final_loss", "final_accuracy" (of the last fine-tuning, also when QAT
    was not kept), "steps" (one {"step", "label", "accuracy", "note"} per step), "qat_choice" (with QAT),
    and one detail dict per step ("prune":
    per-layer sparsity and skipped layers; "cluster": distinct values per kernel; "qat_details": how each
    layer was annotated).
    """
    unknown = sorted(set(options) - set(DEFAULT_OPTIONS))
    if unknown:
        raise ValueError(f"unknown optimization options {unknown}; known: {sorted(DEFAULT_OPTIONS)}")
    options = {**DEFAULT_OPTIONS, **{key: value for key, value in options.items() if value is not None}}
    if not requested(options):
        return model, {}
    check_options(options, train_data)
    x, y = train_data
    fit = {"epochs": int(options["finetune_epochs"]), "batch_size": int(options["batch_size"]), "progress": progress}
    rates = {step: float(options["learning_rate"] or rate) for step, rate in STEP_LEARNING_RATES.items()}
    current = as_twin(model)
    report = {"finetune_epochs": fit["epochs"], "qat": bool(options["qat"]), "learning_rates": rates}
    preserve, report["steps"] = None, []
    if options["prune"] or options["prune_structure"]:
        current, report["prune"] = prune(current, options["prune"], options["prune_structure"], x, y,
                                         learning_rate=rates["prune"], **fit)
        preserve = "sparsity"
        report["steps"].append(measured_step("prune", options, current, evaluate))
    if options["cluster"]:
        current, report["cluster"] = cluster(current, int(options["cluster"]), x, y, learning_rate=rates["cluster"],
                                             preserve_sparsity=preserve == "sparsity", **fit)
        preserve = "clusters"
        report["steps"].append(measured_step("cluster", options, current, evaluate, report["steps"]))
    if options["qat"]:
        trained, report["qat_details"] = quantize_aware_train(current, x, y, preserve=preserve,
                                                              learning_rate=rates["qat"], **fit)
        current, choice = choose_qat_or_ptq(current, trained, evaluate, ptq_accuracy)
        report["qat"], report["qat_choice"] = choice["kept"] == "qat", choice
        report["steps"].append({**measured_step("qat", options, None, None, report["steps"]),
                                "accuracy": choice["accuracy"], "note": choice["note"]})
    report["overall_sparsity"] = final_sparsity(current, report)
    report["clusters"] = report["cluster"]["clusters"] if "cluster" in report else None
    last_step = report.get("qat_details") or report.get("cluster") or report.get("prune")
    report["final_loss"] = last_step["fine_tune"]["loss"]
    report["final_accuracy"] = last_step["fine_tune"]["accuracy"]
    return current, report
