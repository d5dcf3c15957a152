"""Keras layer names out of the tensor and node names TFLite and ONNX files carry.

Both converters keep TensorFlow's name scopes: a TFLite tensor is named after the ops fused into it
(`resnet_1/conv1_relu_1/Relu;resnet_1/conv1_bn_1/batchnorm/add_1;resnet_1/conv1_conv_1/convolution`, the op
whose output it is first), an ONNX node or weight after its TF op
(`StatefulPartitionedCall/StatefulPartitionedCall/resnet_1/conv1_conv_1/convolution/merged_input:0`). Keras 3
opens a scope per model and per layer, suffixed `_N` when traced more than once.

With the model's layer names (`known`), the first path segment that is a layer name, as written or without
one `_N` suffix, is the layer: the first, not the deepest, because TF op names such as `add_1` would
otherwise match Keras's automatic names `add`, `add_1`. Without them: the segment after the model scope,
without one `_N` suffix (right for Keras-3 exports; a tf_keras layer really named `conv_1` needs `known`).

Example:
    >>> name = "resnet_1/conv1_relu_1/Relu;resnet_1/conv1_bn_1/batchnorm/add_1;resnet_1/conv1_conv_1/convolution"
    >>> keras_layers([name])
    ['conv1_relu', 'conv1_bn', 'conv1_conv']
    >>> keras_layers(["StatefulPartitionedCall/model_1/add_1/add:0"], known=["conv", "add_1"])
    ['add_1']
    >>> keras_layers(["Conv__31:0", "StatefulPartitionedCall_1:0"])
    []
    >>> keras_layers(["serving_default_input:0"]), keras_layers(["serving_default_input:0"], known=["input"])
    (['input'], ['input'])
"""
import re

WRAPPER_SCOPES = re.compile(r"^(StatefulPartitionedCall|PartitionedCall|serving_default)(_\d+)?$")
SIGNATURE_PREFIX = "serving_default_"  # TFLite names the signature's input tensors serving_default_<input>
TRACE_SUFFIX = re.compile(r"_\d+$")


def _segments(path):
    """Name-scope segments of one TF op/tensor name, without the `:N` output index and wrapper scopes."""
    segments = [s for s in path.split(":")[0].split("/") if s]
    if len(segments) == 1 and segments[0].startswith(SIGNATURE_PREFIX):
        segments = [segments[0][len(SIGNATURE_PREFIX):]]
    while segments and WRAPPER_SCOPES.match(segments[0]):
        segments.pop(0)
    return segments


def _without_suffix(segment):
    return TRACE_SUFFIX.sub("", segment)


def layer_of_path(path, known=None):
    """The Keras layer one TF op/tensor path names, or None.

    Example:
        >>> layer_of_path("resnet_1/conv2_block1_1_bn_1/batchnorm/add_1")
        'conv2_block1_1_bn'
        >>> layer_of_path("resnet_1/conv2_block1_1_bn_1/batchnorm/add_1", known=["conv2_block1_1_bn"])
        'conv2_block1_1_bn'
    """
    segments = _segments(path)
    if known is not None:
        for segment in segments:
            for candidate in (segment, _without_suffix(segment)):
                if candidate in known:
                    return candidate
        return None
    if len(segments) == 1 and path.startswith(SIGNATURE_PREFIX):
        return segments[0]  # the model's input, named after its input layer
    return _without_suffix(segments[1]) if len(segments) >= 3 else None


def keras_layers(names, known=None):
    """The distinct Keras layers named by `names` (each may join fused op names with ';'), in order met."""
    known = set(known) if known is not None else None
    found = []
    for name in names:
        for path in name.split(";"):
            layer = layer_of_path(path, known)
            if layer and layer not in found:
                found.append(layer)
    return found


def main_layer(layers, order=None):
    """The layer a row is named by: the last of `layers` in the model's `order` (the layer whose output the
    fused op produces), else the first found.

    Example:
        >>> main_layer(["conv2_block1_2_conv", "conv2_block1_2_bn"], order=["conv2_block1_2_conv", "conv2_block1_2_bn"])
        'conv2_block1_2_bn'
    """
    if not layers:
        return None
    if order:
        position = {name: i for i, name in enumerate(order)}
        ranked = [layer for layer in layers if layer in position]
        if ranked:
            return max(ranked, key=position.__getitem__)
    return layers[0]
