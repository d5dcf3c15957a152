"""Backbones: the builders' `features_only`, `out_indices` and `output_stride` arguments, and `feature_info`.

A *stage* is one resolution level of a family: stage k ends with the last tensor at stride s_k on the main
path, i.e. the input of the k-th downsampling step (a strided block or a transition), and the last stage ends
with the net's final tensor (after the closing BN-ReLU of the pre-activation families, whose block outputs are
un-normalized sums). Strides: 4/8/16/32 for the ImageNet families, 1/2/4 for the CIFAR ResNets.

* resnet, resnet_tricks, resnext, wide_resnet, seresnet (timm's `layer1..4`) and the CIFAR ResNets: the last
  block of each stage, `conv{k+1}_block{n}_out`;
* resnet_v2: the input of the block that strides (keras style: the stage's last block, so stage 1 ends with
  `conv2_block{n-1}`; timm style: the next stage's first block), the last stage after `post_relu` (timm's
  final `norm`, as its forward_intermediates(norm=True));
* densenet: each dense block's output as it enters its transition, `conv{k+1}_block{n}_concat` (timm's
  `denseblock{k}`), the last after the final BN-ReLU `relu` (timm's `norm5`).

`features_only=True` returns a `keras.Model` whose outputs are those stage tensors, each passed through a
weightless `Identity` layer named `stage{k}`, in `out_indices` order (stage numbers 1..N, default all; timm's
`out_indices` number the same stages alike, its 0 being the stride-2 stem, which is not offered). There is no
pooling and no classifier; every other layer keeps its name, so a classifier's weights load into the backbone.

`output_stride=16|8` (ImageNet ResNets) keeps the last stage(s) at that stride by dilation, as timm's
`make_blocks` and torchvision's `replace_stride_with_dilation` do: a downsampling block past the target stride
gets stride 1 and its first 3x3 conv the dilation in effect before it; every later 3x3 conv gets the dilation
multiplied by the stride it replaced (16: last stage dilation 2; 8: stages 3/4 dilation 2/4). Weight shapes do
not change, so the same weights load.

Example:
    >>> import reszoo
    >>> model = reszoo.create_model("resnet18", features_only=True, input_shape=(64, 64, 3))
    >>> [(f["name"], f["stride"], f["channels"]) for f in feature_info(model)][-1]
    ('stage4', 32, 512)
"""
import keras

FEATURE_PREFIX = "stage"
OUTPUT_STRIDES = (8, 16, 32)  # timm's choices; 32 (or None) is the undilated net
STEM_STRIDE = 4  # the ImageNet stems (7x7/2 conv + 3x3/2 max pool) end at stride 4


def check_feature_args(features_only, out_indices, num_stages, pooling):
    """The stage numbers to output (1-based, in the given order), or None without features_only.

    Raises ValueError (one line, naming the allowed values) for bad out_indices, out_indices without
    features_only, and pooling with features_only.

    Example:
        >>> check_feature_args(True, None, 4, None), check_feature_args(True, [4, 2], 4, None)
        ((1, 2, 3, 4), (4, 2))
    """
    allowed = tuple(range(1, num_stages + 1))
    if not features_only:
        if out_indices is not None:
            raise ValueError(f"out_indices={out_indices!r} needs features_only=True")
        return None
    if pooling is not None:
        raise ValueError(f"pooling={pooling!r} does not apply with features_only=True (stage maps are not pooled)")
    if out_indices is None:
        return allowed
    chosen = tuple(out_indices) if isinstance(out_indices, (list, tuple)) else ()
    valid = all(isinstance(i, int) and not isinstance(i, bool) and i in allowed for i in chosen)
    if not chosen or not valid or len(set(chosen)) != len(chosen):
        raise ValueError(f"out_indices={out_indices!r} must be a non-empty sequence of distinct stage numbers "
                         f"from {', '.join(map(str, allowed))}")
    return chosen


def check_output_stride(output_stride):
    """`output_stride` if it is None, 8, 16 or 32; else ValueError naming the allowed values.

    Example:
        >>> check_output_stride(16)
        16
    """
    if output_stride is not None and (output_stride not in OUTPUT_STRIDES or isinstance(output_stride, bool)):
        raise ValueError(f"output_stride={output_stride!r} is not allowed; choose one of "
                         f"{', '.join(map(repr, (None, *OUTPUT_STRIDES)))}")
    return output_stride


def refuse_output_stride(output_stride, family, reason):
    """ValueError saying why `family` cannot dilate, unless output_stride is None."""
    if output_stride is not None:
        raise ValueError(f"output_stride={output_stride!r} is not offered for {family}: {reason}")


class StridePlan:
    """Stride and dilations block by block for a target output stride (timm's `make_blocks` rule).

    `step(nominal_stride)` returns (stride, first_dilation, dilation) for the next block: once the net stride has
    reached `output_stride`, a nominal stride becomes 1 and multiplies the dilation instead; the block's first
    spatial conv uses the dilation in effect before it (first_dilation), later ones the new one.

    Example:
        >>> plan = StridePlan(16)
        >>> [plan.step(s) for s in (1, 2, 2, 2, 1)]
        [(1, 1, 1), (2, 1, 1), (2, 1, 1), (1, 1, 2), (1, 2, 2)]
    """

    def __init__(self, output_stride=None, stem_stride=STEM_STRIDE):
        self.output_stride = output_stride
        self.net_stride = stem_stride
        self.dilation = 1

    def step(self, nominal_stride):
        first_dilation = self.dilation
        if nominal_stride > 1 and self.output_stride and self.net_stride >= self.output_stride:
            self.dilation *= nominal_stride
            return 1, first_dilation, self.dilation
        self.net_stride *= nominal_stride
        return nominal_stride, first_dilation, self.dilation


def feature_outputs(stage_tensors, out_indices):
    """The chosen stage tensors, each through a weightless Identity layer `stage{k}`, in `out_indices` order."""
    return [keras.layers.Identity(name=f"{FEATURE_PREFIX}{k}")(stage_tensors[k - 1]) for k in out_indices]


def _layer_stride(layer):
    strides = getattr(layer, "strides", None)
    return int(strides[0]) if strides else 1


def _first_input(tensor):
    """(producing layer, its first input tensor or None at an Input) of a symbolic tensor."""
    layer, node_index, _ = tensor._keras_history
    inputs = layer._inbound_nodes[node_index].input_tensors
    return layer, (inputs[0] if inputs else None)


def output_stride_of(tensor):
    """The input-to-`tensor` stride: the product of the layer strides along the first-input path.

    Every path through a residual or dense net has the same product; the first input is the main path for the
    families here (the shortcut of an Add, the features of an SE Multiply, the block input of a Concatenate).
    """
    stride = 1
    while tensor is not None:
        layer, tensor = _first_input(tensor)
        stride *= _layer_stride(layer)
    return stride


def feature_info(model):
    """One record per output of a feature model: name, stride (reduction), channels and static size.

    Computed from the model itself (its output layers and the strides along the graph), so it works on a
    `.keras` file loaded without reszoo, at any input size. ValueError for a model whose outputs are not
    image feature maps (a classifier).

    Example:
        >>> import reszoo
        >>> model = reszoo.create_model("resnet20", features_only=True, out_indices=(3,))
        >>> feature_info(model)
        [{'name': 'stage3', 'stride': 4, 'channels': 64, 'size': [8, 8]}]
    """
    records = []
    for tensor in model.outputs:
        if len(tensor.shape) != 4:
            raise ValueError(f"model {model.name!r} output {tensor.name!r} of shape {tuple(tensor.shape)} is not a "
                             "feature map; build the model with features_only=True")
        layer, _, _ = tensor._keras_history
        records.append({"name": layer.name, "stride": output_stride_of(tensor), "channels": int(tensor.shape[-1]),
                        "size": list(tensor.shape[1:3])})
    return records
