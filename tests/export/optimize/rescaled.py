"""A function-equivalent copy of a model with channel-range imbalance (the case cross-layer equalization fixes).

In each chosen chain, output channel `channel` of the BN before a ReLU is multiplied by `factor` and the next
conv's input channel divided by it: ReLU is positively homogeneous, so the float function is unchanged, but
the activation tensor's range now spans `factor` x its other channels (per-tensor int8 loses them).
"""
import numpy as np

from export.optimize.equalize import find_chains


def rescaled_chains(model, count=3):
    """The first `count` (batch norm, consumer) chains of `model` with a batch norm, as layer names."""
    return [(norm.name, consumer.name) for _, norm, consumer in find_chains(model) if norm is not None][:count]


def rescaled_copy(model, chains, factor=1000.0, channel=0):
    """A copy of `model` with channel `channel` rescaled by `factor` across each (norm name, consumer name)."""
    import keras

    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    for norm_name, consumer_name in chains:
        norm, consumer = copy.get_layer(norm_name), copy.get_layer(consumer_name)
        for weight in (norm.gamma, norm.beta):
            values = np.asarray(weight).copy()
            values[channel] *= factor
            weight.assign(values)
        kernel = np.asarray(consumer.kernel).copy()
        kernel[..., channel, :] /= factor
        consumer.kernel.assign(kernel)
    return copy
