"""Gradient-flow and activation diagnostics per residual block, at initialisation and after N SGD steps.

A *block* ``conv{stage}_block{b}`` is found by its output layer: ``{block}_out`` (CIFAR, plain, highway and
ImageNet v1 families), or ``{block}_add`` when the block has no ``_out`` layer (pre-activation ResNet v2, whose
blocks end at the addition); blocks are ordered by (stage, b), i.e. by depth. For one fixed batch, with batch norm in
training mode (batch statistics, as during a training step) and L = mean sparse cross-entropy over the batch:

- ``grad_norm``: ||dL/dh||_2, the L2 norm of the loss gradient w.r.t. the block output tensor h (the whole
  batch tensor, all elements) -- how much gradient reaches the block from above;
- ``weight_grad_norm``: sqrt(sum ||dL/dW||_2^2) over the trainable weights of every layer named ``{block}_*``
  (convs, batch norms, highway gate conv) -- how much the block's own parameters are pushed;
- ``mean``, ``std``, ``zero_fraction``: statistics of h over the batch (``_out`` is post-ReLU, so its zeros are
  inactive units);
- ``gate_mean`` (highway models): mean of T over the batch, T = the ``{block}_gate`` layer output in (0, 1).

Flags compare the first and last block (``ratio = grad_norm[first] / grad_norm[last]``) against
GRADIENT_THRESHOLDS, and flag any non-finite norm. Writing diagnose.json/.png and the summary lines:
`reszoo.analysis.diagnose_report`.

Example:
    >>> import reszoo
    >>> from reszoo.analysis.diagnose import find_blocks
    >>> find_blocks(reszoo.create_model("resnet20", width=4))[:2]
    ['conv2_block1', 'conv2_block2']
"""
import functools
import math
import re

import numpy as np

from export.core.errors import UserError

BLOCK_OUTPUT = re.compile(r"^(conv(\d+)_block(\d+))_(out|add)$")
OUTPUT_SUFFIXES = ("out", "add")  # preference order for a block's output layer

# name -> (first/last grad-norm ratio test, limit, meaning). Kept as data so docs, JSON and code agree.
GRADIENT_THRESHOLDS = {
    "vanishing": ("below", 1e-2, "the first block receives < 1% of the gradient norm reaching the last block"),
    "exploding": ("above", 1e2, "the gradient norm grows > 100x on its way back from the last to the first block"),
}
COMPARE = {"below": lambda value, limit: value < limit, "above": lambda value, limit: value > limit}

DEFINITIONS = {
    "block": "conv{stage}_block{b}, output layer '{block}_out' (else '{block}_add'), ordered by (stage, b)",
    "loss": "mean sparse categorical cross-entropy over one fixed batch; batch norm in training mode",
    "grad_norm": "L2 norm of dL/d(block output) over the whole batch tensor",
    "weight_grad_norm": "sqrt of the summed squared L2 norms of dL/dW over trainable weights of layers '{block}_*'",
    "mean/std/zero_fraction": "statistics of the block output over the batch (zero_fraction = share of exact 0s)",
    "gate_mean": "highway models: mean of the gate T = sigmoid(conv1x1(x) + b) over the batch",
    "ratio_first_last": "grad_norm of the first block / grad_norm of the last block",
}


def find_blocks(model):
    """Names of the model's residual blocks (``conv{s}_block{b}``) in depth order; UserError when none.

    Example:
        >>> import reszoo
        >>> len(find_blocks(reszoo.create_model("plain20", width=4)))
        9
    """
    return list(block_outputs(model))


def block_outputs(model):
    """{block: its output layer name} in depth order (``{block}_out``, else ``{block}_add``); UserError when none."""
    suffixes = {}
    for layer in model.layers:
        match = BLOCK_OUTPUT.match(layer.name)
        if match:
            key = (int(match.group(2)), int(match.group(3)), match.group(1))
            suffixes.setdefault(key, set()).add(match.group(4))
    if not suffixes:
        raise UserError(f"model {model.name!r} has no residual blocks (layers named conv{{stage}}_block{{b}}_out "
                        "or _add); diagnose needs the zoo's block naming")
    return {key[2]: f"{key[2]}_{next(s for s in OUTPUT_SUFFIXES if s in found)}"
            for key, found in sorted(suffixes.items())}


def gate_layer_names(model, blocks):
    """{block: gate layer name} for blocks that have a highway gate ``{block}_gate``."""
    names = {layer.name for layer in model.layers}
    return {block: f"{block}_gate" for block in blocks if f"{block}_gate" in names}


def block_weights(model, block):
    """Trainable variables of every layer whose name starts with ``{block}_``."""
    prefix = f"{block}_"
    return [w for layer in model.layers if layer.name.startswith(prefix) for w in layer.trainable_weights]


def outputs_softmax(model):
    """True when the model's last layer applies softmax (so the loss must not treat outputs as logits)."""
    import keras

    return getattr(model.layers[-1], "activation", None) is keras.activations.softmax


class BlockProbe:
    """Evaluates one batch through `model` and returns block outputs, gates, loss and their gradients.

    Runs in training mode, so like a training step it also updates the batch-norm moving statistics.

    Example:
        >>> import numpy as np, reszoo
        >>> probe = BlockProbe(reszoo.create_model("resnet20", width=4, input_shape=(16, 16, 3)))
        >>> snap = probe.snapshot(np.zeros((4, 16, 16, 3), "float32"), np.arange(4))
        >>> len(snap["blocks"])
        9
    """

    def __init__(self, model):
        import keras

        self.model = model
        self.outputs = block_outputs(model)
        self.blocks = list(self.outputs)
        self.gates = gate_layer_names(model, self.blocks)
        taps = [model.get_layer(self.outputs[b]).output for b in self.blocks]
        taps += [model.get_layer(self.gates[b]).output for b in self.blocks if b in self.gates]
        self.tapped = keras.Model(model.input, taps + [model.output], name=f"{model.name}_probe")
        self.weights = [block_weights(model, b) for b in self.blocks]
        self.loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=not outputs_softmax(model))

    def gradients(self, x, y):
        """(loss, predictions, block outputs, gate outputs, d loss/d outputs, d loss/d block weights)."""
        import tensorflow as tf

        n_blocks = len(self.blocks)
        with tf.GradientTape() as tape:
            results = self.tapped(x, training=True)
            loss = self.loss_fn(y, results[-1])
        outputs, gates = results[:n_blocks], results[n_blocks:-1]
        flat_weights = [w for group in self.weights for w in group]
        grads = tape.gradient(loss, list(outputs) + flat_weights)
        output_grads, weight_grads = grads[:n_blocks], grads[n_blocks:]
        return loss, results[-1], outputs, gates, output_grads, self._group(weight_grads)

    def _group(self, flat):
        groups, start = [], 0
        for group in self.weights:
            groups.append(flat[start: start + len(group)])
            start += len(group)
        return groups

    def snapshot(self, x, y, step=0):
        """Per-block diagnostics (see module docstring) for the batch (x, y), plus loss, accuracy and flags."""
        loss, predictions, outputs, gates, output_grads, weight_grads = self.gradients(x, y)
        gate_of = dict(zip([b for b in self.blocks if b in self.gates], gates))
        rows = [block_row(block, out, grad, wgrads, gate_of.get(block))
                for block, out, grad, wgrads in zip(self.blocks, outputs, output_grads, weight_grads)]
        norms = [row["grad_norm"] for row in rows]
        accuracy = float(np.mean(np.argmax(np.asarray(predictions), axis=-1) == np.asarray(y)))
        return {"step": int(step), "loss": float(loss), "batch_accuracy": accuracy, "blocks": rows,
                "ratio_first_last": safe_ratio(norms[0], norms[-1]), "flags": gradient_flags(norms)}


def l2(tensor):
    """L2 norm of a tensor (0.0 for a missing gradient)."""
    return 0.0 if tensor is None else float(np.sqrt(np.sum(np.square(np.asarray(tensor, dtype="float64")))))


def block_row(block, output, output_grad, weight_grads, gate=None):
    """One block's diagnostics as a JSON-ready dict."""
    values = np.asarray(output)
    row = {
        "name": block,
        "grad_norm": l2(output_grad),
        "weight_grad_norm": float(math.sqrt(sum(l2(g) ** 2 for g in weight_grads))),
        "mean": float(values.mean()),
        "std": float(values.std()),
        "zero_fraction": float(np.mean(values == 0.0)),
    }
    if gate is not None:
        row["gate_mean"] = float(np.asarray(gate).mean())
    return row


def safe_ratio(numerator, denominator):
    """numerator / denominator, inf for a zero denominator (JSON writers turn inf into a string)."""
    return float(numerator / denominator) if denominator else float("inf")


def gradient_flags(norms):
    """Names of the GRADIENT_THRESHOLDS conditions the per-block gradient norms meet (plus 'non_finite').

    Example:
        >>> gradient_flags([1e-4, 0.5, 1.0])
        ['vanishing']
        >>> gradient_flags([1.0, 1.0])
        []
    """
    if not all(math.isfinite(n) for n in norms):
        return ["non_finite"]
    ratio = safe_ratio(norms[0], norms[-1])
    return [name for name, (test, limit, _) in GRADIENT_THRESHOLDS.items() if COMPARE[test](ratio, limit)]


def sgd_steps(model, x, y, *, steps, batch_size, learning_rate=0.05, momentum=0.9, seed=0):
    """Train `model` in place for `steps` SGD steps on (x, y), shuffled batches; returns the last loss.

    Example:
        >>> import keras, numpy as np
        >>> m = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(8, "softmax")])
        >>> loss = sgd_steps(m, np.zeros((8, 8, 8, 3), "float32"), np.arange(8), steps=2, batch_size=4)
        >>> 0 < loss < 10
        True
    """
    import keras
    import tensorflow as tf

    optimizer = keras.optimizers.SGD(learning_rate=learning_rate, momentum=momentum)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=not outputs_softmax(model))

    @tf.function(reduce_retracing=True)
    def step(batch_x, batch_y):
        with tf.GradientTape() as tape:
            loss = loss_fn(batch_y, model(batch_x, training=True))
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_weights), model.trainable_weights))
        return loss

    loss = float("nan")
    for indices in batch_indices(len(x), batch_size, steps, seed):
        loss = float(step(x[indices], y[indices]))
    return loss


def batch_indices(n, batch_size, steps, seed):
    """`steps` index arrays of size min(batch_size, n), walking seeded permutations of range(n) epoch by epoch."""
    rng = np.random.default_rng(seed)
    size = min(batch_size, n)
    order, position = rng.permutation(n), 0
    for _ in range(steps):
        if position + size > n:
            order, position = rng.permutation(n), 0
        yield order[position: position + size]
        position += size


def diagnose_model(model, x, y, *, steps=50, batch_size=64, learning_rate=0.05, seed=0):
    """Diagnostics of `model` at init and after `steps` SGD steps on preprocessed (x, y).

    The probe batch is the same `batch_size` training samples (seeded) at both points, so the two
    snapshots are comparable. Trains `model` in place.

    Example:
        >>> import numpy as np
        >>> from reszoo.models.cifar import CifarResNet
        >>> m = CifarResNet(8, width=4, highway=True, input_shape=(8, 8, 3))  # 3 blocks
        >>> r = diagnose_model(m, np.zeros((8, 8, 8, 3), "float32"), np.arange(8), steps=0, batch_size=4)  # no SGD
        >>> sorted(r["snapshots"]), r["blocks"], r["highway"]
        (['init', 'trained'], ['conv2_block1', 'conv3_block1', 'conv4_block1'], True)
    """
    probe = BlockProbe(model)
    probe_idx = np.sort(np.random.default_rng(seed).permutation(len(x))[: min(batch_size, len(x))])
    init = probe.snapshot(x[probe_idx], y[probe_idx], step=0)
    sgd_steps(model, x, y, steps=steps, batch_size=batch_size, learning_rate=learning_rate, seed=seed)
    trained = probe.snapshot(x[probe_idx], y[probe_idx], step=steps)
    return {"name": model.name, "blocks": probe.blocks, "block_outputs": list(probe.outputs.values()),
            "highway": bool(probe.gates),
            "params": int(model.count_params()), "snapshots": {"init": init, "trained": trained}}


@functools.lru_cache(maxsize=4)
def load_training_data(source, image_size, channels=3):
    """Preprocessed train part of `source` (export.data.sources split) as (x, y, class_names)."""
    from export.data.preprocess import default_spec_for_input
    from export.data.splits import prepare, split_for_spec

    spec = default_spec_for_input((image_size[0], image_size[1], channels))
    train, _ = split_for_spec(source, spec)
    if train.y is None:
        raise UserError(f"data {source!r} has no labels; diagnose needs labeled images")
    return prepare(train, spec), train.y, train.class_names


def diagnose(names, *, data="digits", steps=50, batch_size=64, learning_rate=0.05, seed=0, width=None,
             image_size=None):
    """Build each registered model, diagnose it at init and after `steps` steps; returns a JSON-ready report.

    Each model is built with `keras.utils.set_random_seed(seed)` first, at its registered default input size
    (or `image_size`), with as many classes as `data` has. `width` is passed to builders that take it.

    Example:
        >>> report = diagnose(["resnet20"], steps=0, batch_size=8, width=4, image_size=(8, 8))  # steps=0: at init
        >>> report["models"][0]["name"], len(report["models"][0]["blocks"])
        ('resnet20', 9)
    """
    import keras

    from reszoo.models.resolve import resolve_model

    resolved = [resolve_model(name, allowed=("name",)) for name in names]  # unknown names fail before any work
    reports = []
    for target in resolved:
        size = tuple(image_size or target.entry.default_input[:2])
        channels = target.entry.default_input[2]
        x, y, class_names = load_training_data(data, size, channels)
        keras.utils.set_random_seed(seed)
        kwargs = {"input_shape": (*size, channels), "num_classes": len(class_names)}
        if width is not None:
            kwargs["width"] = width
        model = target.build(**kwargs)
        reports.append(diagnose_model(model, x, y, steps=steps, batch_size=batch_size,
                                      learning_rate=learning_rate, seed=seed))
    return {
        "schema": 1,
        "definitions": DEFINITIONS,
        "thresholds": {k: {"ratio_first_last": test, "limit": limit, "meaning": meaning}
                       for k, (test, limit, meaning) in GRADIENT_THRESHOLDS.items()},
        "recipe": {"data": str(data), "steps": steps, "batch_size": batch_size, "optimizer": "SGD",
                   "learning_rate": learning_rate, "momentum": 0.9, "seed": seed, "width": width,
                   "image_size": list(image_size) if image_size else None},
        "models": reports,
    }
