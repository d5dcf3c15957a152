"""ImageNet ResNets (v1 / v1.5), ResNet-C/D stems and shortcuts, ResNeXt, Wide ResNet and SE-ResNet: one
parametrized builder; depth variants are rows of a table.

Layer names follow keras.applications (`conv1_conv`, `pool1_pool`, `conv2_block1_0_conv`, `..._3_bn`,
`..._add`, `..._out`), so keras.applications weights map by name (see `reszoo.weights.keras_weights`).

Example:
    >>> from reszoo.models.resnet import ResNet
    >>> m = ResNet((1, 1), "basic", width=8, input_shape=(32, 32, 3), num_classes=10)
    >>> m.output_shape
    (None, 10)
"""
import keras
from keras import layers

from reszoo.models.blocks import (BN_EPSILON, check_choice, check_common_args, check_drop_path_rate,
                                  classifier_head, connection_mode, conv_bn, drop_path_rates, merge, squeeze_excite,
                                  with_bn_epsilon)
from reszoo.models.features import StridePlan, check_feature_args, check_output_stride, feature_outputs
from reszoo.models.registry import register_model
from reszoo.weights.keras_weights import load_weights

PAPER_2015 = "He et al. 2015, Deep Residual Learning for Image Recognition, arXiv:1512.03385"
PAPER_TRICKS = "He et al. 2019, Bag of Tricks for Image Classification with CNNs, arXiv:1812.01187"
PAPER_RESNEXT = "Xie et al. 2017, Aggregated Residual Transformations (ResNeXt), arXiv:1611.05431"
PAPER_WIDE = "Zagoruyko & Komodakis 2016, Wide Residual Networks, arXiv:1605.07146 (torchvision layout)"
PAPER_SE = "Hu et al. 2018, Squeeze-and-Excitation Networks, arXiv:1709.01507"

STEMS = ("default", "deep")
DOWNSAMPLES = ("conv", "avgpool")
SE_RATIO = 1 / 16  # SE-ResNet's reduction ratio r = 16

# depth -> (block type, blocks per stage); He et al. 2015 Table 1, plus ResNet-200 (He et al. 2016).
RESNET_DEPTHS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
    200: ("bottleneck", (3, 24, 36, 3)),
}


def shortcut_branch(x, out_channels, strides, name, downsample, weight_decay, dilation=1):
    """Identity when shapes match; else 1x1 projection + BN (`{name}_0_*`), for ResNet-D after a 2x2 avg-pool.

    In a dilated block (stride replaced by `dilation` > 1) ResNet-D's pool keeps the size, as timm's
    `downsample_avg`: a 2x2 average at stride 1 over one zero row and column appended (`{name}_0_pool_pad`).
    """
    if strides == 1 and x.shape[-1] == out_channels:
        return x
    if downsample == "avgpool" and strides > 1:
        x = layers.AveragePooling2D(strides, strides=strides, padding="same", name=f"{name}_0_pool")(x)
        strides = 1
    elif downsample == "avgpool" and dilation > 1:
        x = layers.ZeroPadding2D(((0, 1), (0, 1)), name=f"{name}_0_pool_pad")(x)
        x = layers.AveragePooling2D(2, strides=1, name=f"{name}_0_pool")(x)
    return conv_bn(x, out_channels, 1, strides, name=f"{name}_0", activation=None, weight_decay=weight_decay)


def basic_residual(x, planes, strides, name, options, dilations=(1, 1)):
    """Two 3x3 convs (`_1`, `_2`, dilated by `dilations`); returns the residual branch before the merge."""
    y = conv_bn(x, planes, 3, strides, name=f"{name}_1", weight_decay=options["weight_decay"], dilation=dilations[0])
    return conv_bn(y, planes, 3, 1, name=f"{name}_2", activation=None, zero_gamma=options["zero_init_residual"],
                   weight_decay=options["weight_decay"], dilation=dilations[1])


def bottleneck_residual(x, planes, strides, name, options, dilations=(1, 1)):
    """1x1 reduce (`_1`), 3x3 grouped (`_2`), 1x1 expand x4 (`_3`); stride on the 3x3 unless stride_in_1x1.

    The 3x3 takes `dilations[0]` where it holds the (replaced) stride, `dilations[1]` when it follows the 1x1
    that does (stride_in_1x1): a conv after a removed stride must be dilated by it (a trous).
    """
    groups, decay = options["groups"], options["weight_decay"]
    width = int(planes * options["base_width"] / 64) * groups
    stride_1x1, stride_3x3 = (strides, 1) if options["stride_in_1x1"] else (1, strides)
    dilation_3x3 = dilations[1] if options["stride_in_1x1"] else dilations[0]
    y = conv_bn(x, width, 1, stride_1x1, name=f"{name}_1", weight_decay=decay)
    y = conv_bn(y, width, 3, stride_3x3, name=f"{name}_2", groups=groups, weight_decay=decay, dilation=dilation_3x3)
    return conv_bn(y, planes * 4, 1, 1, name=f"{name}_3", activation=None, zero_gamma=options["zero_init_residual"],
                   weight_decay=decay)


# block type -> (residual branch function, channel expansion)
BLOCKS = {"basic": (basic_residual, 1), "bottleneck": (bottleneck_residual, 4)}


def residual_block(x, planes, strides, name, options, drop_path_rate=0.0, dilations=(1, 1)):
    """One block: residual branch (+ SE), merged with the shortcut by `options["mode"]`, ReLU `{name}_out`.

    drop_path_rate: this block's stochastic-depth rate (a `{name}_drop_path` Dropout before the merge when > 0).
    dilations: (first, rest) dilation of the block's 3x3 convs (`StridePlan`; (1, 1) without output_stride).
    """
    residual_fn, expansion = BLOCKS[options["block"]]
    mode = options["mode"]
    shortcut = None
    if mode != "plain":
        shortcut = shortcut_branch(x, planes * expansion, strides, name, options["downsample"],
                                   options["weight_decay"], dilations[1])
    y = residual_fn(x, planes, strides, name, options, dilations)
    if options["se"]:
        y = squeeze_excite(y, name, ratio=SE_RATIO, weight_decay=options["weight_decay"])
    y = merge(shortcut, y, mode, name, block_input=x, strides=strides, weight_decay=options["weight_decay"],
              drop_path_rate=drop_path_rate)
    return layers.Activation("relu", name=f"{name}_out")(y)


def build_stem(x, kind, width, weight_decay):
    """`default`: 7x7/2 conv (`conv1`); `deep` (ResNet-C): three 3x3 convs (`conv1_1..3`). Then 3x3/2 max-pool."""
    if kind == "deep":
        x = conv_bn(x, width // 2, 3, 2, name="conv1_1", weight_decay=weight_decay)
        x = conv_bn(x, width // 2, 3, 1, name="conv1_2", weight_decay=weight_decay)
        x = conv_bn(x, width, 3, 1, name="conv1_3", weight_decay=weight_decay)
    else:
        x = conv_bn(x, width, 7, 2, name="conv1", weight_decay=weight_decay)
    x = layers.ZeroPadding2D(padding=1, name="pool1_pad")(x)
    return layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)


def check_stage_blocks(stage_blocks):
    """stage_blocks must be a non-empty sequence of positive ints."""
    if not stage_blocks or not all(isinstance(n, int) and n > 0 for n in stage_blocks):
        raise ValueError(f"stage_blocks={stage_blocks!r} must be a non-empty sequence of positive block counts")


def ResNet(stage_blocks, block="bottleneck", *, stride_in_1x1=False, stem="default", downsample="conv",
           groups=1, base_width=64, width=64, se=False, skip=True, highway=False, input_shape=None, num_classes=1000,
           include_top=True, pooling=None, classifier_activation="softmax", weights=None, dropout_rate=0.0,
           zero_init_residual=False, weight_decay=0.0, bn_epsilon=BN_EPSILON, drop_path_rate=0.0, features_only=False,
           out_indices=None, output_stride=None, name=None):
    """Build an ImageNet-layout ResNet (or its plain / highway twin) as a Keras functional model.

    Args:
        stage_blocks: blocks per stage, e.g. (3, 4, 6, 3); stage i has width * 2**i planes.
        block: "basic" (2 x 3x3) or "bottleneck" (1x1, 3x3, 1x1 with 4x expansion).
        stride_in_1x1: False (v1.5, torchvision) strides the 3x3 conv; True is the paper / keras.applications.
        stem: "default" 7x7 conv or "deep" (ResNet-C, three 3x3 convs).
        downsample: "conv" (strided 1x1 projection) or "avgpool" (ResNet-D: 2x2 avg-pool, then 1x1 conv).
        groups, base_width: bottleneck width = int(planes * base_width / 64) * groups (ResNeXt 32x4d: 32, 4;
            Wide ResNet-50-2: 1, 128).
        width: planes of the first stage and stem width (64 in the paper; smaller for tiny test models).
        se: add squeeze-and-excitation (r = 16) to every block's residual branch.
        skip: False gives the plain net (same layers, no shortcut); highway: gated skip T*F(x) + (1-T)*x.
        bn_epsilon: BatchNormalization epsilon (keras.applications' 1.001e-5; 1e-5 for PyTorch weights).
        drop_path_rate: stochastic depth (Huang et al. 2016): in training each sample skips block i's residual
            branch with probability drop_path_rate * i / (num_blocks - 1) over all blocks of the net (0 for the
            first), kept branches scaled by 1 / (1 - p); identity at inference. A Dropout `{block}_drop_path`
            per block with p > 0; 0 (default) adds no layer. In [0, 1); > 0 needs skip=True. With highway=True
            the gated term T*(F(x) - x) is dropped, so a dropped block is the identity.
        features_only: return the stage outputs `stage1..stageN` (strides 4, 8, 16, 32) instead of the classifier;
            out_indices picks and orders them (stage numbers, default all). See `reszoo.models.features`.
        output_stride: 16 or 8 dilates the last stage(s) instead of striding them (DeepLab); None / 32 = no.

    Example:
        >>> ResNet((2, 2, 2, 2), "basic").count_params()  # ResNet-18; 11,689,512 trainable
        11699112
    """
    check_stage_blocks(stage_blocks)
    check_choice("block", block, tuple(BLOCKS))
    check_choice("stem", stem, STEMS)
    check_choice("downsample", downsample, DOWNSAMPLES)
    out_indices = check_feature_args(features_only, out_indices, len(stage_blocks), pooling)
    plan = StridePlan(check_output_stride(output_stride))
    include_top = include_top and not features_only
    check_common_args(input_shape, include_top, num_classes, weights, dropout_rate)
    check_drop_path_rate(drop_path_rate, skip)
    if not isinstance(width, int) or width < 2:
        raise ValueError(f"width={width!r} must be an integer >= 2")
    if int(width * base_width / 64) < 1:
        raise ValueError(f"base_width={base_width!r} with width={width!r} gives an empty bottleneck")
    options = dict(block=block, stride_in_1x1=stride_in_1x1, downsample=downsample, groups=groups,
                   base_width=base_width, se=se, mode=connection_mode(skip, highway),
                   zero_init_residual=zero_init_residual, weight_decay=weight_decay)
    inputs = keras.Input(shape=input_shape or (224, 224, 3), name="input")
    x = build_stem(inputs, stem, width, weight_decay)
    rates = iter(drop_path_rates(drop_path_rate, sum(stage_blocks)))
    stage_outputs = []
    for stage, blocks in enumerate(stage_blocks):
        for index in range(blocks):
            strides, *dilations = plan.step(2 if stage > 0 and index == 0 else 1)
            x = residual_block(x, width * 2**stage, strides, f"conv{stage + 2}_block{index + 1}", options,
                               next(rates), dilations)
        stage_outputs.append(x)
    if features_only:
        x = feature_outputs(stage_outputs, out_indices)
    else:
        x = classifier_head(x, include_top, pooling, num_classes, classifier_activation, dropout_rate, weight_decay)
    model = keras.Model(inputs, x, name=name or "resnet")
    return load_weights(with_bn_epsilon(model, bn_epsilon), weights)


def resnet_by_depth(depth, **kwargs):
    """ResNet of a standard depth (18, 34, 50, 101, 152, 200); other depths raise ValueError.

    Example:
        >>> resnet_by_depth(18, width=8, input_shape=(32, 32, 3)).name
        'resnet18'
    """
    check_choice("depth", depth, tuple(RESNET_DEPTHS))
    block, stage_blocks = RESNET_DEPTHS[depth]
    kwargs.setdefault("name", f"resnet{depth}")
    return ResNet(stage_blocks, block, **kwargs)


# registered name -> (depth, builder defaults, family, paper)
RESNET_VARIANTS = {
    **{f"resnet{depth}": (depth, {}, "resnet", PAPER_2015) for depth in RESNET_DEPTHS},
    "resnet50c": (50, {"stem": "deep"}, "resnet_tricks", PAPER_TRICKS),
    "resnet50d": (50, {"stem": "deep", "downsample": "avgpool"}, "resnet_tricks", PAPER_TRICKS),
    "resnext50_32x4d": (50, {"groups": 32, "base_width": 4}, "resnext", PAPER_RESNEXT),
    "resnext101_32x8d": (101, {"groups": 32, "base_width": 8}, "resnext", PAPER_RESNEXT),
    "wide_resnet50_2": (50, {"base_width": 128}, "wide_resnet", PAPER_WIDE),
    "wide_resnet101_2": (101, {"base_width": 128}, "wide_resnet", PAPER_WIDE),
    "seresnet50": (50, {"se": True}, "seresnet", PAPER_SE),
}


def _register(name, depth, defaults, family, paper):
    @register_model(name, family=family, paper=paper)
    def build(**kwargs):
        return resnet_by_depth(depth, **{**defaults, **kwargs})

    build.__name__ = name
    build.__doc__ = f"{name}: depth {depth}, {defaults or 'v1.5 defaults'}. Example: reszoo.create_model({name!r})"
    return build


for _name, (_depth, _defaults, _family, _paper) in RESNET_VARIANTS.items():
    _register(_name, _depth, _defaults, _family, _paper)
