"""Magnitude pruning of Conv2D/Dense kernels with tfmot, on a tf_keras twin, then `strip_pruning`.

Layers are wrapped one by one (`clone_model` + `prune_low_magnitude` per layer), because tfmot refuses whole
models that contain op layers, Rescaling or custom layers. The schedule is PolynomialDecay from 0 to the
target sparsity, reached at a pruning step inside the fine-tuning run. With `structure="2:4"` every group
of 4 consecutive input-channel weights keeps at most 2 (tfmot `sparsity_m_by_n`); layers whose input
channels per group are not a multiple of 4 (e.g. an RGB stem) are left dense and reported as skipped.

Sparsity is reported per pruned layer (zero fraction of its kernel) and overall (zeros over all pruned
kernels' weights); biases and BatchNorm parameters are not pruned and not counted.

Example:
    >>> import numpy as np, tf_keras
    >>> inputs = tf_keras.Input((8,))
    >>> model = tf_keras.Model(inputs, tf_keras.layers.Dense(4, name="fc")(inputs))
    >>> x, y = np.random.rand(64, 8).astype("float32"), np.arange(64) % 4
    >>> pruned, report = prune(model, 0.5, None, x, y, epochs=2, batch_size=16, learning_rate=1e-3)
    >>> report["layers"]["fc"]
    0.5
"""
import numpy as np

from export.optimize.finetune import fine_tune, freeze_batch_norm, steps_per_epoch
from export.optimize.tfmot_loader import legacy_keras_env, load_tfmot
from export.optimize.wrapping import clone_with, find_layer

PRUNABLE_CLASSES = ("Conv2D", "Dense")
STRUCTURES = {"2:4": (2, 4)}
PRUNING_FRACTION_OF_TRAINING = 0.7  # reach the target at 70 % of the steps, then recover at fixed sparsity
PRUNING_UPDATES = 10  # how many times the mask is recomputed on the way to the target
KERNEL_NAMES = ("kernel", "depthwise_kernel")


def is_prunable(layer):
    return layer.__class__.__name__ in PRUNABLE_CLASSES


def input_channels_per_group(layer):
    """Kernel input-channel count (per group for grouped convolutions)."""
    return int(layer.kernel.shape[-2])


def fits_structure(layer, m_by_n):
    return m_by_n is None or input_channels_per_group(layer) % m_by_n[1] == 0


def pruning_schedule(tfmot, sparsity, total_steps):
    """PolynomialDecay 0 -> sparsity whose last mask update lands exactly on its end step.

    Needs total_steps >= 2 (the end step must be a step that runs).
    """
    ramp = int(total_steps * PRUNING_FRACTION_OF_TRAINING)
    frequency = max(1, ramp // PRUNING_UPDATES)
    end_step = max(frequency, ramp // frequency * frequency)
    return tfmot.sparsity.keras.PolynomialDecay(initial_sparsity=0.0, final_sparsity=sparsity, begin_step=0,
                                                end_step=end_step, frequency=frequency)


def wrap_for_pruning(model, sparsity, m_by_n, total_steps):
    """(clone of `model` with prunable layers wrapped, names of wrapped layers, names skipped)."""
    tfmot = load_tfmot()
    wrapped, skipped = [], []

    def wrap(original, clone):
        if not is_prunable(original):
            return None
        if not fits_structure(original, m_by_n):
            skipped.append(original.name)
            return None
        wrapped.append(original.name)
        return tfmot.sparsity.keras.prune_low_magnitude(
            clone, pruning_schedule=pruning_schedule(tfmot, sparsity, total_steps), sparsity_m_by_n=m_by_n)

    return clone_with(model, wrap), wrapped, skipped


def kernel_of(model, name):
    """The kernel values of layer `name`, also when a tfmot wrapper (QAT, clustering) holds the layer."""
    layer = find_layer(model, name)
    kernels = [w for w in layer.weights if w.name.split("/")[-1].split(":")[0] in KERNEL_NAMES]
    return np.asarray(kernels[0])


def kernel_sparsity(model, names):
    """({layer name: zero fraction of its kernel}, overall zero fraction over those kernels)."""
    per_layer, zeros, total = {}, 0, 0
    for name in names:
        kernel = kernel_of(model, name)
        layer_zeros = int(np.sum(kernel == 0))
        per_layer[name] = round(layer_zeros / kernel.size, 4)
        zeros, total = zeros + layer_zeros, total + kernel.size
    return per_layer, (round(zeros / total, 4) if total else 0.0)


def prune(model, sparsity, structure, x, y, epochs, batch_size, learning_rate, progress=None, freeze_bn=True):
    """Prune a tf_keras model while fine-tuning; returns (stripped model, report).

    `sparsity` is the target zero fraction (ignored for a `structure` such as "2:4", which fixes it).
    `freeze_bn`: BatchNormalization statistics stay as trained (`finetune.freeze_batch_norm`).
    """
    tfmot = load_tfmot()
    m_by_n = STRUCTURES[structure] if structure else None
    target = m_by_n[0] / m_by_n[1] if m_by_n else float(sparsity)
    total_steps = epochs * steps_per_epoch(len(x), batch_size)
    wrapped_model, wrapped, skipped = wrap_for_pruning(model, target, m_by_n, total_steps)
    if freeze_bn:
        freeze_batch_norm(wrapped_model)
    with legacy_keras_env():
        metrics = fine_tune(wrapped_model, x, y, epochs, batch_size, learning_rate,
                            callbacks=[tfmot.sparsity.keras.UpdatePruningStep()], progress=progress,
                            description="fine-tune (pruning)")
        stripped = tfmot.sparsity.keras.strip_pruning(wrapped_model)
    per_layer, overall = kernel_sparsity(stripped, wrapped)
    report = {"target_sparsity": round(target, 4), "structure": structure, "layers": per_layer,
              "overall_sparsity": overall, "skipped_layers": skipped, "fine_tune": metrics}
    return stripped, report


def is_m_by_n_sparse(kernel, m_by_n=(2, 4)):
    """True when every n consecutive input-channel weights of a Conv2D/Dense kernel hold >= m zeros."""
    zeros_needed, group = m_by_n
    rows = np.moveaxis(np.asarray(kernel), -2, -1).reshape(-1, kernel.shape[-2])
    if rows.shape[1] % group:
        return False
    blocks = rows.reshape(rows.shape[0], -1, group)
    return bool(np.all(np.sum(blocks == 0, axis=-1) >= zeros_needed))
