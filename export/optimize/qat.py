"""Quantization-aware training with tfmot on a tf_keras twin, annotating layer by layer.

tfmot's whole-model `quantize_model` rejects Multiply (SE, highway gates), Subtract, Rescaling and custom
layers. Here every layer the default 8-bit registry knows, and every BatchNormalization that tfmot folds
into the convolution before it, is annotated with its default config; every other layer gets
`OutputQuantizeConfig` (no weight quantization, fake-quantized output), so the converter sees a range for
every tensor. The result still contains fake-quant ops: convert it with `Optimize.DEFAULT` to get
a full-int8 TFLite file, or export it to ONNX to get QDQ nodes.

Example:
    >>> import numpy as np, tf_keras
    >>> inputs = tf_keras.Input((8,))
    >>> model = tf_keras.Model(inputs, tf_keras.layers.Dense(4, name="fc")(inputs))
    >>> x, y = np.random.rand(32, 8).astype("float32"), np.arange(32) % 4
    >>> qat_model, report = quantize_aware_train(model, x, y, epochs=1, batch_size=16, learning_rate=1e-4)
    >>> report["annotated_layers"]
    {'fc': 'default'}
"""
import functools

import numpy as np

from export.optimize.finetune import fine_tune
from export.optimize.tfmot_loader import legacy_keras_env, load_tfmot
from export.optimize.wrapping import clone_with
BATCH_NORM_CLASSES = ("BatchNormalization", "SyncBatchNormalization")
KERNEL_NAMES = ("kernel", "depthwise_kernel")
FOLDABLE_CONV_CLASSES = ("Conv2D", "DepthwiseConv2D")


@functools.cache
def output_quantize_config_class():
    """`OutputQuantizeConfig`: quantize only a layer's output (layers tfmot has no config for)."""
    tfmot = load_tfmot()
    quantizers = tfmot.quantization.keras.quantizers

    class OutputQuantizeConfig(tfmot.quantization.keras.QuantizeConfig):
        def get_weights_and_quantizers(self, layer):
            return []

        def get_activations_and_quantizers(self, layer):
            return []

        def set_quantize_weights(self, layer, quantize_weights):
            pass

        def set_quantize_activations(self, layer, quantize_activations):
            pass

        def get_output_quantizers(self, layer):
            return [quantizers.MovingAverageQuantizer(num_bits=8, per_axis=False, symmetric=False,
                                                      narrow_range=False)]

        def get_config(self):
            return {}

    return OutputQuantizeConfig


def default_registry():
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_registry)

    return default_8bit_quantize_registry.Default8BitQuantizeRegistry()


def custom_objects(model):
    """Classes quantize_apply must be able to deserialize: the config class and non-tf_keras layers."""
    import tf_keras

    objects = {"OutputQuantizeConfig": output_quantize_config_class()}
    for layer in model.layers:
        cls = layer.__class__
        if getattr(tf_keras.layers, cls.__name__, None) is not cls:
            objects[cls.__name__] = cls
            objects[tf_keras.saving.get_registered_name(cls)] = cls
    return objects


def producer_names(model):
    """{layer name: names of the layers feeding its first call in `model`} (from the model's own graph)."""
    producers = {}
    for spec in model.get_config()["layers"]:
        nodes = spec.get("inbound_nodes") or [[]]
        producers[spec["name"]] = [entry[0] for entry in nodes[0]]
    return producers


def folds_into_conv(layer, model, producers):
    """True for a BatchNormalization right after a linear Conv2D/DepthwiseConv2D: tfmot folds the pair."""
    inputs = producers.get(layer.name, [])
    if layer.__class__.__name__ not in BATCH_NORM_CLASSES or len(inputs) != 1:
        return False
    producer = model.get_layer(inputs[0])
    return (producer.__class__.__name__ in FOLDABLE_CONV_CLASSES
            and getattr(producer.activation, "__name__", None) == "linear")


def annotate(model, tfmot):
    """(clone of `model` with every layer annotated, {layer name: 'default' | 'output-only'})."""
    registry = default_registry()
    producers = producer_names(model)
    kinds = {}

    def wrap(original, clone):
        tfmot_rules = registry.supports(original) or folds_into_conv(original, model, producers)
        config = None if tfmot_rules else output_quantize_config_class()()
        kinds[original.name] = "default" if config is None else "output-only"
        return tfmot.quantization.keras.quantize_annotate_layer(clone, quantize_config=config)

    return clone_with(model, wrap), kinds


def quantize_scheme(tfmot, preserve):
    """The tfmot scheme: keep cluster centroids when the model was clustered, else the default scheme.

    Pruning zeros are re-applied after every batch by `keep_zeros_callback`, so a pruned model is
    quantized with exactly the same (default) rules as an unpruned one.
    """
    if preserve == "clusters":
        return tfmot.experimental.combine.Default8BitClusterPreserveQuantizeScheme()
    return tfmot.quantization.keras.default_8bit.Default8BitQuantizeScheme()


def zero_masked_kernels(model):
    """[(kernel variable, mask of its non-zeros)] for every kernel that already holds zeros (pruned)."""
    pairs = []
    for weight in model.weights:
        if weight.name.split("/")[-1].split(":")[0] in KERNEL_NAMES:
            values = np.asarray(weight)
            if np.any(values == 0):
                pairs.append((weight, (values != 0).astype(values.dtype)))
    return pairs


def keep_zeros_callback(model):
    """A tf_keras callback re-applying the pruning zeros after every QAT batch."""
    import tf_keras

    masked = zero_masked_kernels(model)

    class KeepZeros(tf_keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            for variable, mask in masked:
                variable.assign(variable * mask)

    return KeepZeros()


CALIBRATION_SAMPLES = 512  # training samples the activation ranges start from (qat_ranges.calibrate_ranges)
DEFAULT_FIXES = {"calibrate_ranges": True, "freeze_batch_norm": True}  # measured: docs/optimization.md "QAT that helps"


def quantize_aware_train(model, x, y, epochs, batch_size, learning_rate, preserve=None, progress=None,
                         fixes=None):
    """QAT-fine-tune a tf_keras model; returns (model with fake-quant ops, report).

    `preserve` is None, "sparsity" (after pruning) or "clusters" (after clustering). `fixes` overrides
    DEFAULT_FIXES: "calibrate_ranges" starts the activation ranges from the float model's (not [-6, 6]),
    "freeze_batch_norm" keeps BN statistics fixed during fine-tuning (`export.optimize.qat_ranges`,
    `export.optimize.finetune.freeze_batch_norm`).
    """
    from export.optimize.finetune import freeze_batch_norm
    from export.optimize.qat_ranges import calibrate_ranges

    fixes = {**DEFAULT_FIXES, **(fixes or {})}
    tfmot = load_tfmot()
    annotated, kinds = annotate(model, tfmot)
    with legacy_keras_env():
        with tfmot.quantization.keras.quantize_scope(custom_objects(model)):
            quantized = tfmot.quantization.keras.quantize_apply(annotated, quantize_scheme(tfmot, preserve))
        if fixes["calibrate_ranges"]:
            calibrate_ranges(quantized, model, x[:CALIBRATION_SAMPLES])
        if fixes["freeze_batch_norm"]:
            freeze_batch_norm(quantized)
        callbacks = [keep_zeros_callback(quantized)] if preserve == "sparsity" else []
        metrics = fine_tune(quantized, x, y, epochs, batch_size, learning_rate, callbacks=callbacks,
                            progress=progress, description="fine-tune (QAT)")
    return quantized, {"annotated_layers": kinds, "preserve": preserve, "fixes": fixes, "fine_tune": metrics}
