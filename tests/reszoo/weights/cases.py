"""The import test cases shared by the importer's and the numpy reference's tests: one random state dict per
layout case, made once per session with its logits from the independent tf.nn reference (torch_reference)."""
import numpy as np

from tests.reszoo.weights.torch_reference import random_state_dict, reference_forward

LAYOUT_NAME = {"timm_v2": "timm"}  # reference layout -> reszoo layout name, where they differ
MAX_RELATIVE_ERROR = 1e-4  # float32 re-association over ~20-50 layers stays near 1e-6 of the logit range

# case -> (reszoo name, layout, reference arch, extra builder arguments, input side)
CASES = {
    "torchvision-resnet18": ("resnet18", "torchvision", dict(block="basic", stage_blocks=(2, 2, 2, 2), width=8,
                                                             num_classes=5), {}, 64),
    "torchvision-resnet50": ("resnet50", "torchvision", dict(block="bottleneck", stage_blocks=(3, 4, 6, 3), width=8,
                                                             num_classes=5), {}, 64),
    "torchvision-resnext50": ("resnext50_32x4d", "torchvision",
                              dict(block="bottleneck", stage_blocks=(3, 4, 6, 3), width=16, groups=32, base_width=4,
                                   num_classes=5), {}, 64),
    "torchvision-wide50": ("wide_resnet50_2", "torchvision",
                           dict(block="bottleneck", stage_blocks=(3, 4, 6, 3), width=8, base_width=128,
                                num_classes=5), {}, 64),
    "timm-resnet50d": ("resnet50d", "timm", dict(block="bottleneck", stage_blocks=(3, 4, 6, 3), width=16, stem="deep",
                                                downsample="avgpool", num_classes=5), {}, 64),
    "timm-seresnet50": ("seresnet50", "timm", dict(block="bottleneck", stage_blocks=(3, 4, 6, 3), width=32, se=True,
                                                   num_classes=5), {}, 64),
    "timm-resnetv2_50": ("resnetv2_50", "timm_v2", dict(stage_blocks=(3, 4, 6, 3), width=8, num_classes=5), {}, 64),
    "timm-resnetv2_50-odd-input": ("resnetv2_50", "timm_v2", dict(stage_blocks=(3, 4, 6, 3), width=8, num_classes=5),
                                   {}, 63),
    "cifar-resnet20-A": ("resnet20", "cifar", dict(depth=20, width=16, option="A", num_classes=10), {}, 32),
    "cifar-resnet32-B": ("resnet32", "cifar", dict(depth=32, width=16, option="B", num_classes=10), {}, 32),
}


def inputs(side, seed=1):
    return np.random.default_rng(seed).standard_normal((2, side, side, 3)).astype("float32")


def relative_error(outputs, expected):
    return float(np.abs(outputs - expected).max() / (np.abs(expected).max() + 1e-12))


def make_states():
    """{case: (state dict, reference logits on inputs(side))}."""
    made = {}
    for case, (_, layout, arch, _, side) in CASES.items():
        state = random_state_dict(layout, seed=3, **arch)
        made[case] = state, reference_forward(state, layout, inputs(side), **arch)
    return made
