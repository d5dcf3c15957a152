"""Count multiply-adds of a Keras model from its layers (convolutions, dense, and merges are ignored)."""
from keras import layers


def _conv_macs(layer):
    kh, kw = layer.kernel_size
    _, h, w, c_out = layer.output.shape
    c_in = layer.input.shape[-1]
    return h * w * c_out * kh * kw * c_in // layer.groups


def _dense_macs(layer):
    return layer.input.shape[-1] * layer.units


MAC_COUNTERS = {layers.Conv2D: _conv_macs, layers.Dense: _dense_macs}


def count_macs(model):
    """Multiply-accumulates for one image (batch 1) through Conv2D and Dense layers.

    Example:
        >>> import reszoo
        >>> count_macs(reszoo.create_model("resnet20")) > 40_000_000
        True
    """
    total = 0
    for layer in model.layers:
        for layer_type, counter in MAC_COUNTERS.items():
            if type(layer) is layer_type:
                total += counter(layer)
    return int(total)
