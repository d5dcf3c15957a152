"""Facts about public pretrained ResNet-family checkpoints, one dict per checkpoint: ``PRESET_ROWS``, the PyTorch
files (fields below), and ``KERAS_APPLICATIONS`` (at the end), keras.applications' own ImageNet weights (tag
``"imagenet"``). Together they are every pretrained weight set reszoo knows (`reszoo.weights.presets.list_pretrained`).

The table is plain data (standard library only) and was filled in from primary sources only. A value that no
source gave is ``None``; the row's ``note`` says why.

Fields of each row
------------------
tag
    Where the checkpoint comes from: ``"torchvision:IMAGENET1K_V1"`` / ``"torchvision:IMAGENET1K_V2"`` (torchvision
    weights-enum member), ``"timm:<model>.<pretrained tag>"`` (timm's full pretrained name), ``"cifar:akamaster"``.
    The pair ``(model, tag)`` is unique; one tag string repeats across models.
model
    The reszoo model name the checkpoint is for (``resnext101_64x4d`` is NOT in the reszoo registry; its row says so).
source
    ``"torchvision"``, ``"timm"`` or ``"cifar"``.
url
    Download URL exactly as the source lists it (``None`` if the source lists none).
file_name
    Last path component of ``url``; for Hugging Face Hub files, which are all named ``model.safetensors``, the timm
    name plus ``.safetensors`` (the name the file is cached under).
sha256
    Full SHA-256 of the file if a source publishes one, else ``None`` (no source used here publishes one).
sha256_prefix
    The hex hash in the file name (``name-<hash>.ext``) where the project documents that convention: it is the first
    hex digits of the file's SHA-256, as ``torch.hub.load_state_dict_from_url(check_hash=True)`` checks it.
    torchvision checks it since pytorch/vision#7219 (see issue #7744, PRs #7898 / #8036); timm extracts it with
    ``torch.hub.HASH_REGEX`` when hash checking is on (``timm/models/_hub.py``); akamaster's commit d1ea1080
    "SHA256 hashes has been added to be downloaded directly" renamed the CIFAR files to ``name-<sha256[:8]>.th``.
top1, top5
    ImageNet-1k / CIFAR-10 accuracy in percent, as published by the source named in ``note``.
eval_dataset
    ``"ImageNet-1k val"`` or ``"CIFAR-10 test"``.
input_size
    ``(height, width)`` of the network input the accuracy above was measured at.
resize_size
    Shorter-side resize before the centre crop (torchvision ``ImageClassification(resize_size=...)``; for timm,
    ``floor(input / crop_pct)`` as ``timm.data.transforms_imagenet_eval`` computes it). ``None`` when no resize/crop.
crop_pct
    ``crop / resize`` (torchvision: written as the fraction ``224 / 232``; timm: its ``crop_pct``).
interpolation
    Resize interpolation (``"bilinear"`` / ``"bicubic"``), ``None`` when the eval pipeline does not resize.
mean, std
    Per-channel normalisation applied to RGB values scaled to [0, 1].
num_classes
    Size of the classifier head in the checkpoint.
license
    The licence the source declares for the *weights*; ``None`` where the source declines to state one (torchvision:
    see below).
hub_id
    Hugging Face Hub model id the source lists for the weights (timm ``hf_hub_id='timm/'`` expands to
    ``timm/<model>.<tag>`` in ``timm/models/_registry.py``), else ``None``.
note
    Provenance and caveats for this row.

Sources (read through stored copies; commits given where the store names them)
-------------------------------------------------------------------------------
torchvision
  * URLs, ``acc@1``/``acc@5``, ``ImageClassification(crop_size, resize_size)``: pytorch/vision
    ``torchvision/prototype/models/resnet.py`` at commit aabcd2162c45791995ba92c92737b7da30e97b5f
    https://github.com/pytorch/vision/blob/aabcd2162c45791995ba92c92737b7da30e97b5f/torchvision/prototype/models/resnet.py
    (the current ``torchvision/models/resnet.py`` with the weights enums could not be read through the available
    tools; the prototype file holds the same enums before they moved there).
  * ResNet-50 IMAGENET1K_V2 was replaced after that commit: PR https://github.com/pytorch/vision/pull/5201 ("Update
    ResNet-50 accuracy with Repeated Augmentation", verified ``Acc@1 80.858 Acc@5 95.434``); its file name
    ``resnet50-11ad3fa6.pth`` is the one timm's ``resnet50.tv2_in1k`` cfg points to.
  * ResNeXt-101 64x4d IMAGENET1K_V1: PR https://github.com/pytorch/vision/pull/5935 (``Acc@1 83.246 Acc@5 96.454``,
    ``--val-resize-size=232``), URL from timm's ``resnext101_64x4d.tv_in1k`` cfg, accuracy also on
    https://pytorch.org/vision/stable/models/generated/torchvision.models.resnext101_64x4d.html
  * Every torchvision URL here equals the ``tv_in1k`` / ``tv2_in1k`` URL in timm's ``timm/models/resnet.py`` (below).
  * V1 accuracies cross-checked on the official pages https://pytorch.org/vision/stable/models/generated/
    (``torchvision.models.resnet50``, ``resnet152``, ``resnext50_32x4d``, ``resnext101_32x8d``, ``wide_resnet50_2``).
  * ``ImageClassification`` defaults (resize 256, bilinear, mean/std): pytorch/vision
    ``torchvision/transforms/_presets.py`` at 0446e68eac403bebd0971d5417a9bf8df852ba29.
  * Licence: pytorch/vision ``README.md`` at 0a12c0708810ae6a9a64b584fb8e412412c22b9d, section "Pre-trained Model
    License", and https://pytorch.org/vision/stable/models.html: "The pre-trained models provided in this library may
    have their own licenses or terms and conditions derived from the dataset used for training. It is your
    responsibility to determine whether you have permission to use the models for your use case." The docs thus do
    not put the weights under the code's licence, so ``license`` is ``None`` for these rows (the repository's
    LICENSE file itself was not readable through the tools).
timm (huggingface/pytorch-image-models snapshot at aa4b5850c1543fa488abf260f18390eda46cf85d)
  * ``timm/models/resnetv2.py``: ``default_cfgs`` of ``resnetv2_50/101.a1h_in1k`` (BatchNorm pre-activation nets),
    ``_cfg`` (mean/std ``IMAGENET_INCEPTION_MEAN/STD`` from ``timm/data/constants.py``), ``hf_hub_id='timm/'``.
  * ``timm/models/resnet.py`` (last changed in c0e3d24fe66020baae90e1ecaa858781223ffb32): ``default_cfgs``, the
    ``_cfg``/``_rcfg``/``_r3cfg``/``_ttcfg`` helpers (input size, crop_pct, interpolation, licence, URL).
    https://github.com/huggingface/pytorch-image-models/blob/main/timm/models/resnet.py
  * Default tag = first tag with weights listed for the architecture (``generate_default_cfgs`` in
    ``timm/models/_registry.py``): resnet50d -> ``ra2_in1k``, seresnet50 -> ``a1_in1k``,
    resnext50_32x4d -> ``a1h_in1k``.
  * Accuracy: ``results/results-imagenet.csv`` (last changed in 4e5207c7bb6592474ca56e28b2cf85be8f1a550f), the row
    whose ``img_size`` equals the cfg's ``input_size``.
    https://github.com/huggingface/pytorch-image-models/blob/main/results/results-imagenet.csv
  * Mean/std constants: ``timm/data/constants.py`` (``IMAGENET_DEFAULT_MEAN/STD``); resize formula:
    ``timm/data/transforms_factory.py``; licence: the cfg's ``license`` field (``README.md`` adds that ImageNet's
    non-commercial terms may apply to the weights). Licence of the code: Apache-2.0 (``LICENSE``).
CIFAR (akamaster/pytorch_resnet_cifar10 at d5489e8995e81e91ce6b1d69dcc98ad579b0b153)
  * ``README.md`` table (file links and "Test err(this impl.)"), ``trainer.py`` (normalisation, CIFAR-10 test loader
    without resize/crop), ``LICENSE`` (BSD 2-clause text), ``pretrained_models/`` file names.
    https://github.com/akamaster/pytorch_resnet_cifar10
"""
from export.data.preprocess import IMAGENET_MEAN, IMAGENET_STD

# torchvision: pytorch/vision torchvision/prototype/models/resnet.py @ aabcd216 (URLs, acc@1/acc@5, crop/resize),
# torchvision/transforms/_presets.py @ 0446e68e (ImageClassification defaults: resize 256, bilinear, ImageNet mean/std),
# PR #5201 (resnet50 V2), PR #5935 (resnext101_64x4d), URLs cross-checked against timm/models/resnet.py tv(2)_in1k.
_TORCHVISION_ROWS = (
    {"tag": "torchvision:IMAGENET1K_V1", "model": "resnet18", "source": "torchvision",
     "url": "https://download.pytorch.org/models/resnet18-f37072fd.pth", "file_name": "resnet18-f37072fd.pth",
     "sha256": None, "sha256_prefix": "f37072fd",
     "top1": 69.758, "top5": 89.078, "eval_dataset": "ImageNet-1k val",
     "input_size": (224, 224), "resize_size": 256, "crop_pct": 224 / 256, "interpolation": "bilinear",
     "mean": IMAGENET_MEAN, "std": IMAGENET_STD,
     "num_classes": 1000, "license": None, "hub_id": None,
     "note": "ResNet18_Weights.ImageNet1K_V1 in torchvision/prototype/models/resnet.py @ aabcd216: "
             "ImageNetEval(crop_size=224) (resize default 256). Only weights torchvision has for resnet18 "
             "(no V2). license None: torchvision docs/README say pre-trained models may carry their own "
             "licence/terms derived from the training data (timm's tv_in1k cfg labels this file 'bsd-3-clause')."},
    {"tag": "torchvision:IMAGENET1K_V1", "model": "resnet34", "source": "torchvision",
     "url": "https://download.pytorch.org/models/resnet34-b627a593.pth", "file_name": "resnet34-b627a593.pth",
     "sha256": None, "sha256_prefix": "b627a593",
     "top1": 73.314, "top5": 91.420, "eval_dataset": "ImageNet-1k val",
     "input_size": (224, 224), "resize_size": 256, "crop_pct": 224 / 256, "interpolation": "bilinear",
     "mean": IMAGENET_MEAN, "std": IMAGENET_STD,
     "num_classes": 1000, "license": None, "hub_id": None,
     "note": "ResNet34_Weights.ImageNet1K_V1 (prototype resnet.py @ aabcd216); crop 224, resize default 256. "
             "No V2 for resnet34. license None: see module docstring (torchvision weight-licence note)."},
    {"tag": "torchvision:IMAGENET1K_V1", "model": "resnet50", "source": "torchvision",
     "url": "https://download.pytorch.org/models/resnet50-0676ba61.pth", "file_name": "resnet50-0676ba61.pth",
     "sha256": None, "sha256_prefix": "0676ba61",
     "top1": 76.130, "top5": 92.862, "eval_dataset": "ImageNet-1k val",
     "input_size": (224, 224), "resize_size": 256, "crop_pct": 224 / 256, "interpolation": "bilinear",
     "mean": IMAGENET_MEAN, "std": IMAGENET_STD,
     "num_classes": 1000, "license": None, "hub_id": None,
     "note": "ResNet50_Weights.ImageNet1K_V1 (prototype resnet.py @ aabcd216); acc also on "
             "pytorch.org/vision/stable/models/generated/torchvision.models.resnet50.html (76.13 / 92.862). "
             "license None: see module docstring."},
    {"tag": "torchvision:IMAGENET1K_V2", "model": "resnet50", "source": "torchvision",
     "url": "https://download.pytorch.org/models/resnet50-11ad3fa6.pth", "file_name": "resnet50-11ad3fa6.pth",
     "sha256": None, "sha256_prefix": "11ad3fa6",
     "top1": 80.858, "top5": 95.434, "eval_dataset": "ImageNet-1k val",
     "input_size": (224, 224), "resize_size": 232, "crop_pct": 224 / 232, "interpolation": "bilinear",
     "mean": IMAGENET_MEAN, "std": IMAGENET_STD,
     "num_classes": 1000, "license": None, "hub_id": None,
     "note": "Accuracy from pytorch/vision PR #5201 (replaced the earlier V2 file resnet50-f46c3f97.pth, 80.674, "
             "still in prototype resnet.py @ aabcd216); URL as in timm resnet50.tv2_in1k cfg; crop 224 / resize 232 "
             "as ImageNet1K_V2 in the prototype file. Torchvision's DEFAULT for resnet50. "
             "license None: see docstring."},
    {"tag": "torchvision:IMAGENET1K_V1", "model": "resnet101", "source": "torchvision",
     "url": "https://download.pytorch.org/models/resnet101-63fe2227.pth", "file_name": "resnet101-63fe2227.pth",
     "sha256": None, "sha256_prefix": "63fe2227",
     "top1": 77.374, "top5": 93.546, "eval_dataset": "ImageNet-1k val",
     "input_size": (224, 224), "resize_size": 256, "crop_pct": 224 / 256, "interpolation": "bilinear",
     "mean": IMAGENET_MEAN, "std": IMAGENET_STD,
     "num_classes": 1000, "license": None, "hub_id": None,
     "note": "ResNet101_Weights.ImageNet1K_V1 (prototype resnet.py @ aabcd216). license None: see docstring."},
    {"tag": "torchvision:IMAGENET1K_V2", "model": "resnet101", "source": "torchvision",
     "url": "https://download.pytorch.org/models/resnet101-cd907fc2.pth", "file_name": "resnet101-cd907fc2.pth",
     "sha256": None, "sha256_prefix": "cd907fc2",
     "top1": 81.886, "top5": 95.780, "eval_dataset": "ImageNet-1k val",
     "input_size": (224, 224), "resize_size": 232, "crop_pct": 224 / 232, "interpolation": "bilinear",
     "mean": IMAGENET_MEAN, "std": IMAGENET_STD,
     "num_classes": 1000, "license": None, "hub_id": None,
     "note": "ResNet101_Weights.ImageNet1K_V2 (prototype resnet.py @ aabcd216; later figures than PR #4811's "
             "81.728). timm's own eval of this file: 81.906 at 224/crop 0.965. license None: see docstring."},
    {"tag": "torchvision:IMAGENET1K_V1", "model": "resnet152", "source": "torchvision",
     "url": "https://download.pytorch.org/models/resnet152-394f9c45.pth", "file_name": "resnet152-394f9c45.pth",
     "sha256": None, "sha256_prefix": "394f9c45",
     "top1": 78.312, "top5": 94.046, "eval_dataset": "ImageNet-1k val",
     "input_size": (224, 224), "resize_size": 256, "crop_pct": 224 / 256, "interpolation": "bilinear",
     "mean": IMAGENET_MEAN, "std": IMAGENET_STD,
     "num_classes": 1000, "license": None, "hub_id": None,
     "note": "ResNet152_Weights.ImageNet1K_V1 (prototype resnet.py @ aabcd216; acc also on the pytorch.org "
             "resnet152 page). license None: see docstring."},
    {"tag": "torchvision:IMAGENET1K_V2", "model": "resnet152", "source": "torchvision",
     "url": "https://download.pytorch.org/models/resnet152-f82ba261.pth", "file_name": "resnet152-f82ba261.pth",
     "sha256": None, "sha256_prefix": "f82ba261",
     "top1": 82.284, "top5": 96.002, "eval_dataset": "ImageNet-1k val",
     "input_size": (224, 224), "resize_size": 232, "crop_pct": 224 / 232, "interpolation": "bilinear",
     "mean": IMAGENET_MEAN, "std": IMAGENET_STD,
     "num_classes": 1000, "license": None, "hub_id": None,
     "note": "ResNet152_Weights.ImageNet1K_V2 (prototype resnet.py @ aabcd216). timm's own eval: 82.294 at "
             "224/crop 0.965. license None: see docstring."},
    {"tag": "torchvision:IMAGENET1K_V1", "model": "resnext50_32x4d", "source": "torchvision",
     "url": "https://download.pytorch.org/models/resnext50_32x4d-7cdf4587.pth",
     "file_name": "resnext50_32x4d-7cdf4587.pth",
     "sha256": None, "sha256_prefix": "7cdf4587",
     "top1": 77.618, "top5": 93.698, "eval_dataset": "ImageNet-1k val",
     "input_size": (224, 224), "resize_size": 256, "crop_pct": 224 / 256, "interpolation": "bilinear",
     "mean": IMAGENET_MEAN, "std": IMAGENET_STD,
     "num_classes": 1000, "license": None, "hub_id": None,
     "note": "ResNeXt50_32X4D_Weights.ImageNet1K_V1 (prototype resnet.py @ aabcd216; acc also on the pytorch.org "
             "resnext50_32x4d page). license None: see docstring."},
    {"tag": "torchvision:IMAGENET1K_V2", "model": "resnext50_32x4d", "source": "torchvision",
     "url": "https://download.pytorch.org/models/resnext50_32x4d-1a0047aa.pth",
     "file_name": "resnext50_32x4d-1a0047aa.pth",
     "sha256": None, "sha256_prefix": "1a0047aa",
     "top1": 81.198, "top5": 95.340, "eval_dataset": "ImageNet-1k val",
     "input_size": (224, 224), "resize_size": 232, "crop_pct": 224 / 232, "interpolation": "bilinear",
     "mean": IMAGENET_MEAN, "std": IMAGENET_STD,
     "num_classes": 1000, "license": None, "hub_id": None,
     "note": "ResNeXt50_32X4D_Weights.ImageNet1K_V2 (prototype resnet.py @ aabcd216). license None: see docstring."},
    {"tag": "torchvision:IMAGENET1K_V1", "model": "resnext101_32x8d", "source": "torchvision",
     "url": "https://download.pytorch.org/models/resnext101_32x8d-8ba56ff5.pth",
     "file_name": "resnext101_32x8d-8ba56ff5.pth",
     "sha256": None, "sha256_prefix": "8ba56ff5",
     "top1": 79.312, "top5": 94.526, "eval_dataset": "ImageNet-1k val",
     "input_size": (224, 224), "resize_size": 256, "crop_pct": 224 / 256, "interpolation": "bilinear",
     "mean": IMAGENET_MEAN, "std": IMAGENET_STD,
     "num_classes": 1000, "license": None, "hub_id": None,
     "note": "ResNeXt101_32X8D_Weights.ImageNet1K_V1 (prototype resnet.py @ aabcd216; acc also on the pytorch.org "
             "resnext101_32x8d page). license None: see docstring."},
    {"tag": "torchvision:IMAGENET1K_V2", "model": "resnext101_32x8d", "source": "torchvision",
     "url": "https://download.pytorch.org/models/resnext101_32x8d-110c445d.pth",
     "file_name": "resnext101_32x8d-110c445d.pth",
     "sha256": None, "sha256_prefix": "110c445d",
     "top1": 82.834, "top5": 96.228, "eval_dataset": "ImageNet-1k val",
     "input_size": (224, 224), "resize_size": 232, "crop_pct": 224 / 232, "interpolation": "bilinear",
     "mean": IMAGENET_MEAN, "std": IMAGENET_STD,
     "num_classes": 1000, "license": None, "hub_id": None,
     "note": "ResNeXt101_32X8D_Weights.ImageNet1K_V2 (prototype resnet.py @ aabcd216). license None: see docstring."},
    {"tag": "torchvision:IMAGENET1K_V1", "model": "resnext101_64x4d", "source": "torchvision",
     "url": "https://download.pytorch.org/models/resnext101_64x4d-173b62eb.pth",
     "file_name": "resnext101_64x4d-173b62eb.pth",
     "sha256": None, "sha256_prefix": "173b62eb",
     "top1": 83.246, "top5": 96.454, "eval_dataset": "ImageNet-1k val",
     "input_size": (224, 224), "resize_size": 232, "crop_pct": 224 / 232, "interpolation": "bilinear",
     "mean": IMAGENET_MEAN, "std": IMAGENET_STD,
     "num_classes": 1000, "license": None, "hub_id": None,
     "note": "NOT IN THE RESZOO REGISTRY (no resnext101_64x4d model); listed for completeness. Only weights "
             "torchvision has for it (IMAGENET1K_V1 = DEFAULT, trained with the new recipe). acc from pytorch/vision "
             "PR #5935 and the pytorch.org resnext101_64x4d page; resize 232 from PR #5935 (--val-resize-size=232); "
             "URL from timm resnext101_64x4d.tv_in1k cfg. license None: see docstring."},
    {"tag": "torchvision:IMAGENET1K_V1", "model": "wide_resnet50_2", "source": "torchvision",
     "url": "https://download.pytorch.org/models/wide_resnet50_2-95faca4d.pth",
     "file_name": "wide_resnet50_2-95faca4d.pth",
     "sha256": None, "sha256_prefix": "95faca4d",
     "top1": 78.468, "top5": 94.086, "eval_dataset": "ImageNet-1k val",
     "input_size": (224, 224), "resize_size": 256, "crop_pct": 224 / 256, "interpolation": "bilinear",
     "mean": IMAGENET_MEAN, "std": IMAGENET_STD,
     "num_classes": 1000, "license": None, "hub_id": None,
     "note": "Wide_ResNet50_2_Weights.ImageNet1K_V1 (prototype resnet.py @ aabcd216; acc also on the pytorch.org "
             "wide_resnet50_2 page). license None: see docstring."},
    {"tag": "torchvision:IMAGENET1K_V2", "model": "wide_resnet50_2", "source": "torchvision",
     "url": "https://download.pytorch.org/models/wide_resnet50_2-9ba9bcbe.pth",
     "file_name": "wide_resnet50_2-9ba9bcbe.pth",
     "sha256": None, "sha256_prefix": "9ba9bcbe",
     "top1": 81.602, "top5": 95.758, "eval_dataset": "ImageNet-1k val",
     "input_size": (224, 224), "resize_size": 232, "crop_pct": 224 / 232, "interpolation": "bilinear",
     "mean": IMAGENET_MEAN, "std": IMAGENET_STD,
     "num_classes": 1000, "license": None, "hub_id": None,
     "note": "Wide_ResNet50_2_Weights.ImageNet1K_V2 (prototype resnet.py @ aabcd216; same figures in PR #4862). "
             "license None: see docstring."},
    {"tag": "torchvision:IMAGENET1K_V1", "model": "wide_resnet101_2", "source": "torchvision",
     "url": "https://download.pytorch.org/models/wide_resnet101_2-32ee1156.pth",
     "file_name": "wide_resnet101_2-32ee1156.pth",
     "sha256": None, "sha256_prefix": "32ee1156",
     "top1": 78.848, "top5": 94.284, "eval_dataset": "ImageNet-1k val",
     "input_size": (224, 224), "resize_size": 256, "crop_pct": 224 / 256, "interpolation": "bilinear",
     "mean": IMAGENET_MEAN, "std": IMAGENET_STD,
     "num_classes": 1000, "license": None, "hub_id": None,
     "note": "Wide_ResNet101_2_Weights.ImageNet1K_V1 (prototype resnet.py @ aabcd216). license None: see docstring."},
    {"tag": "torchvision:IMAGENET1K_V2", "model": "wide_resnet101_2", "source": "torchvision",
     "url": "https://download.pytorch.org/models/wide_resnet101_2-d733dc28.pth",
     "file_name": "wide_resnet101_2-d733dc28.pth",
     "sha256": None, "sha256_prefix": "d733dc28",
     "top1": 82.510, "top5": 96.020, "eval_dataset": "ImageNet-1k val",
     "input_size": (224, 224), "resize_size": 232, "crop_pct": 224 / 232, "interpolation": "bilinear",
     "mean": IMAGENET_MEAN, "std": IMAGENET_STD,
     "num_classes": 1000, "license": None, "hub_id": None,
     "note": "Wide_ResNet101_2_Weights.ImageNet1K_V2 (prototype resnet.py @ aabcd216; later figures than PR "
             "#4906's 82.492). license None: see docstring."},
)

# timm: huggingface/pytorch-image-models @ aa4b5850, timm/models/resnet.py default_cfgs (url, hf_hub_id, input_size,
# crop_pct, interpolation, license via _cfg/_rcfg/_r3cfg/_ttcfg), results/results-imagenet.csv (top1/top5 at the
# cfg's input_size), timm/data/constants.py (IMAGENET_DEFAULT_MEAN/STD), timm/data/transforms_factory.py (resize).
_TIMM_ROWS = (
    {"tag": "timm:resnet50.a1_in1k", "model": "resnet50", "source": "timm",
     "url": "https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-rsb-weights/"
            "resnet50_a1_0-14fe96d1.pth",
     "file_name": "resnet50_a1_0-14fe96d1.pth",
     "sha256": None, "sha256_prefix": "14fe96d1",
     "top1": 80.382, "top5": 94.598, "eval_dataset": "ImageNet-1k val",
     "input_size": (224, 224), "resize_size": 235, "crop_pct": 0.95, "interpolation": "bicubic",
     "mean": IMAGENET_MEAN, "std": IMAGENET_STD,
     "num_classes": 1000, "license": "Apache-2.0", "hub_id": "timm/resnet50.a1_in1k",
     "note": "_rcfg (ResNet strikes back A1). results-imagenet.csv row 'resnet50.a1_in1k,224' (crop 0.950, bicubic). "
             "cfg also sets test_input_size 288 / test_crop_pct 1.0: csv row at 288 gives 81.240 / 95.112. "
             "resize 235 = floor(224 / 0.95). licence = cfg 'license' field; timm README says ImageNet's terms may "
             "apply to the weights. timm downloads from hub_id when huggingface_hub is installed, else from url."},
    {"tag": "timm:resnet50.a2_in1k", "model": "resnet50", "source": "timm",
     "url": "https://github.com/huggingface/pytorch-image-models/releases/download/v0.1-rsb-weights/"
            "resnet50_a2_0-a2746f79.pth",
     "file_name": "resnet50_a2_0-a2746f79.pth",
     "sha256": None, "sha256_prefix": "a2746f79",
     "top1": 79.828, "top5": 94.560, "eval_dataset": "ImageNet-1k val",
     "input_size": (224, 224), "resize_size": 235, "crop_pct": 0.95, "interpolation": "bicubic",
     "mean": IMAGENET_MEAN, "std": IMAGENET_STD,
     "num_classes": 1000, "license": "Apache-2.0", "hub_id": "timm/resnet50.a2_in1k",
     "note": "_rcfg (RSB A2). results-imagenet.csv row 'resnet50.a2_in1k,224' (crop 0.950, bicubic). "
             "test_input_size 288 / test_crop_pct 1.0: csv row at 288 gives 80.774 / 94.978. "
             "resize 235 = floor(224 / 0.95). licence = cfg 'license' field (see README caveat)."},
    {"tag": "timm:resnet50.a3_in1k", "model": "resnet50", "source": "timm",
     "url": "https://github.com/huggingface/pytorch-image-models/releases/download/v0.1-rsb-weights/"
            "resnet50_a3_0-59cae1ef.pth",
     "file_name": "resnet50_a3_0-59cae1ef.pth",
     "sha256": None, "sha256_prefix": "59cae1ef",
     "top1": 75.994, "top5": 92.494, "eval_dataset": "ImageNet-1k val",
     "input_size": (160, 160), "resize_size": 168, "crop_pct": 0.95, "interpolation": "bicubic",
     "mean": IMAGENET_MEAN, "std": IMAGENET_STD,
     "num_classes": 1000, "license": "Apache-2.0", "hub_id": "timm/resnet50.a3_in1k",
     "note": "_r3cfg (RSB A3): default input_size 160, crop_pct 0.95. results-imagenet.csv row "
             "'resnet50.a3_in1k,160' (crop 0.950, bicubic). test_input_size 224 / test_crop_pct 0.95: csv row at "
             "224 gives 78.052 / 93.780. resize 168 = floor(160 / 0.95). licence = cfg 'license' field."},
    {"tag": "timm:resnet50d.ra2_in1k", "model": "resnet50d", "source": "timm",
     "url": "https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-weights/"
            "resnet50d_ra2-464e36ba.pth",
     "file_name": "resnet50d_ra2-464e36ba.pth",
     "sha256": None, "sha256_prefix": "464e36ba",
     "top1": 80.546, "top5": 95.160, "eval_dataset": "ImageNet-1k val",
     "input_size": (224, 224), "resize_size": 256, "crop_pct": 0.875, "interpolation": "bicubic",
     "mean": IMAGENET_MEAN, "std": IMAGENET_STD,
     "num_classes": 1000, "license": "Apache-2.0", "hub_id": "timm/resnet50d.ra2_in1k",
     "note": "Default pretrained tag of resnet50d (first tag listed, before ra4_e3600_r224_in1k, a1/a2/a3, "
             "gluon_in1k). _ttcfg: bicubic, crop_pct 0.875, first_conv conv1.0 (deep stem). results-imagenet.csv row "
             "'resnet50d.ra2_in1k,224' (crop 0.875). test_input_size 288 / test_crop_pct 0.95: csv 81.354 / 95.742. "
             "licence = cfg 'license' field."},
    {"tag": "timm:seresnet50.a1_in1k", "model": "seresnet50", "source": "timm",
     "url": "https://github.com/huggingface/pytorch-image-models/releases/download/v0.1-rsb-weights/"
            "seresnet50_a1_0-ffa00869.pth",
     "file_name": "seresnet50_a1_0-ffa00869.pth",
     "sha256": None, "sha256_prefix": "ffa00869",
     "top1": 80.012, "top5": 94.704, "eval_dataset": "ImageNet-1k val",
     "input_size": (224, 224), "resize_size": 235, "crop_pct": 0.95, "interpolation": "bicubic",
     "mean": IMAGENET_MEAN, "std": IMAGENET_STD,
     "num_classes": 1000, "license": "Apache-2.0", "hub_id": "timm/seresnet50.a1_in1k",
     "note": "Default pretrained tag of seresnet50 (first listed; others: a2_in1k, a3_in1k, ra2_in1k). _rcfg with "
             "crop_pct=0.95. results-imagenet.csv row 'seresnet50.a1_in1k,224' (crop 0.950). test_input_size 288 / "
             "test_crop_pct 1.0: csv 81.114 / 95.122. resize 235 = floor(224 / 0.95). licence = cfg 'license'."},
    {"tag": "timm:resnext50_32x4d.a1h_in1k", "model": "resnext50_32x4d", "source": "timm",
     "url": "https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-rsb-weights/"
            "resnext50_32x4d_a1h-0146ab0a.pth",
     "file_name": "resnext50_32x4d_a1h-0146ab0a.pth",
     "sha256": None, "sha256_prefix": "0146ab0a",
     "top1": 81.140, "top5": 95.320, "eval_dataset": "ImageNet-1k val",
     "input_size": (224, 224), "resize_size": 235, "crop_pct": 0.95, "interpolation": "bicubic",
     "mean": IMAGENET_MEAN, "std": IMAGENET_STD,
     "num_classes": 1000, "license": "Apache-2.0", "hub_id": "timm/resnext50_32x4d.a1h_in1k",
     "note": "Default pretrained tag of resnext50_32x4d (listed first, before a1/a2/a3/ra_in1k, tv/tv2, fb_*, "
             "gluon). _rcfg. results-imagenet.csv row 'resnext50_32x4d.a1h_in1k,224' (crop 0.950). test_input_size "
             "288 / test_crop_pct 1.0: csv 82.016 / 95.934. resize 235 = floor(224 / 0.95). licence = cfg 'license'."},
    {"tag": "timm:resnetv2_50.a1h_in1k", "model": "resnetv2_50", "source": "timm",
     "url": "https://huggingface.co/timm/resnetv2_50.a1h_in1k/resolve/main/model.safetensors",
     "file_name": "resnetv2_50.a1h_in1k.safetensors",
     "sha256": None, "sha256_prefix": None,
     "top1": 80.410, "top5": 95.082, "eval_dataset": "ImageNet-1k val",
     "input_size": (224, 224), "resize_size": 235, "crop_pct": 0.95, "interpolation": "bicubic",
     "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5),
     "num_classes": 1000, "license": "Apache-2.0", "hub_id": "timm/resnetv2_50.a1h_in1k",
     "note": "timm/models/resnetv2.py cfg 'resnetv2_50.a1h_in1k': hf_hub_id only (no release URL), so the URL is the "
             "Hub file timm downloads (model.safetensors; cached under the timm name, as every Hub file has that "
             "name); _cfg default mean/std IMAGENET_INCEPTION_MEAN/STD = 0.5. results-imagenet.csv row "
             "'resnetv2_50.a1h_in1k,224' (crop 0.950). test_input_size 288 / test_crop_pct 1.0: csv 81.406 / "
             "95.712. resize 235 = floor(224 / 0.95). licence = _cfg 'license'. No published hash."},
    {"tag": "timm:resnetv2_101.a1h_in1k", "model": "resnetv2_101", "source": "timm",
     "url": "https://huggingface.co/timm/resnetv2_101.a1h_in1k/resolve/main/model.safetensors",
     "file_name": "resnetv2_101.a1h_in1k.safetensors",
     "sha256": None, "sha256_prefix": None,
     "top1": 82.042, "top5": 95.866, "eval_dataset": "ImageNet-1k val",
     "input_size": (224, 224), "resize_size": 235, "crop_pct": 0.95, "interpolation": "bicubic",
     "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5),
     "num_classes": 1000, "license": "Apache-2.0", "hub_id": "timm/resnetv2_101.a1h_in1k",
     "note": "As resnetv2_50.a1h_in1k. results-imagenet.csv row 'resnetv2_101.a1h_in1k,224' (crop 0.950); at 288 / "
             "crop 1.0: 83.002 / 96.444."},
    {"tag": "timm:resnet18.tv_in1k", "model": "resnet18", "source": "timm",
     "url": "https://download.pytorch.org/models/resnet18-f37072fd.pth", "file_name": "resnet18-f37072fd.pth",
     "sha256": None, "sha256_prefix": "f37072fd",
     "top1": 69.752, "top5": 89.082, "eval_dataset": "ImageNet-1k val",
     "input_size": (224, 224), "resize_size": 256, "crop_pct": 0.875, "interpolation": "bilinear",
     "mean": IMAGENET_MEAN, "std": IMAGENET_STD,
     "num_classes": 1000, "license": "BSD-3-Clause", "hub_id": "timm/resnet18.tv_in1k",
     "note": "Same file as torchvision:IMAGENET1K_V1 resnet18; timm's cfg (_cfg, origin_url pytorch/vision). "
             "Not resnet18's default timm tag (that is a1_in1k). top1/top5 are timm's own eval "
             "(results-imagenet.csv row 'resnet18.tv_in1k,224', crop 0.875), not torchvision's 69.758/89.078. "
             "license 'bsd-3-clause' is what timm's cfg declares; torchvision itself states no weight licence."},
    {"tag": "timm:resnet34.tv_in1k", "model": "resnet34", "source": "timm",
     "url": "https://download.pytorch.org/models/resnet34-b627a593.pth", "file_name": "resnet34-b627a593.pth",
     "sha256": None, "sha256_prefix": "b627a593",
     "top1": 73.298, "top5": 91.422, "eval_dataset": "ImageNet-1k val",
     "input_size": (224, 224), "resize_size": 256, "crop_pct": 0.875, "interpolation": "bilinear",
     "mean": IMAGENET_MEAN, "std": IMAGENET_STD,
     "num_classes": 1000, "license": "BSD-3-Clause", "hub_id": "timm/resnet34.tv_in1k",
     "note": "Same file as torchvision:IMAGENET1K_V1 resnet34; timm's cfg (_cfg, origin_url pytorch/vision). "
             "Not resnet34's default timm tag (that is a1_in1k). top1/top5 are timm's own eval "
             "(results-imagenet.csv row 'resnet34.tv_in1k,224', crop 0.875), not torchvision's 73.314/91.420. "
             "license 'bsd-3-clause' is what timm's cfg declares; torchvision itself states no weight licence."},
)

# CIFAR: akamaster/pytorch_resnet_cifar10 @ d5489e89 - README.md table (links, "Test err(this impl.)"),
# trainer.py (transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]); the CIFAR-10 test
# loader applies only ToTensor + normalize), LICENSE (BSD 2-clause), pretrained_models/ file names.
_CIFAR_ROWS = (
    {"tag": "cifar:akamaster", "model": "resnet20", "source": "cifar",
     "url": "https://github.com/akamaster/pytorch_resnet_cifar10/raw/master/pretrained_models/resnet20-12fca82f.th",
     "file_name": "resnet20-12fca82f.th",
     "sha256": None, "sha256_prefix": "12fca82f",
     "top1": 91.73, "top5": None, "eval_dataset": "CIFAR-10 test",
     "input_size": (32, 32), "resize_size": None, "crop_pct": None, "interpolation": None,
     "mean": IMAGENET_MEAN, "std": IMAGENET_STD,
     "num_classes": 10, "license": "BSD-2-Clause", "hub_id": None,
     "note": "top1 = 100 - 8.27 (README 'Test err(this impl.)'); top5 not published. The checkpoint's own "
             "'best_prec1' is 91.78. File (1,099,231 bytes, legacy torch pickle) holds {'best_prec1', 'state_dict'} "
             "with DataParallel 'module.' key prefix. sha256 None because no source publishes it; sha256 of the "
             "file in the repo = 12fca82f0bebc4135bf1f32f6e3710e61d5108578464b84fd6d7f5c1b04036c8 (computed here, "
             "matches the prefix). README's second list links resnet20.th, which is not in the repo."},
    {"tag": "cifar:akamaster", "model": "resnet32", "source": "cifar",
     "url": "https://github.com/akamaster/pytorch_resnet_cifar10/raw/master/pretrained_models/resnet32-d509ac18.th",
     "file_name": "resnet32-d509ac18.th",
     "sha256": None, "sha256_prefix": "d509ac18",
     "top1": 92.63, "top5": None, "eval_dataset": "CIFAR-10 test",
     "input_size": (32, 32), "resize_size": None, "crop_pct": None, "interpolation": None,
     "mean": IMAGENET_MEAN, "std": IMAGENET_STD,
     "num_classes": 10, "license": "BSD-2-Clause", "hub_id": None,
     "note": "top1 = 100 - 7.37 (README); top5 not published. Checkpoint 'best_prec1' is 92.78. Layout as resnet20 "
             "('module.' prefix). sha256 of the repo file (computed here, not published) = "
             "d509ac1820d7f25398913559d7e81a13229b1e7adc5648e3bfa5e22dc137f850."},
    {"tag": "cifar:akamaster", "model": "resnet44", "source": "cifar",
     "url": "https://github.com/akamaster/pytorch_resnet_cifar10/raw/master/pretrained_models/resnet44-014dd654.th",
     "file_name": "resnet44-014dd654.th",
     "sha256": None, "sha256_prefix": "014dd654",
     "top1": 93.10, "top5": None, "eval_dataset": "CIFAR-10 test",
     "input_size": (32, 32), "resize_size": None, "crop_pct": None, "interpolation": None,
     "mean": IMAGENET_MEAN, "std": IMAGENET_STD,
     "num_classes": 10, "license": "BSD-2-Clause", "hub_id": None,
     "note": "top1 = 100 - 6.90 (README); top5 not published. Checkpoint 'best_prec1' is 93.14. sha256 of the repo "
             "file (computed here, not published) = "
             "014dd6541728a1c700b1642ab640e211dc6eb8ed507d70697458dc8f8a0ae2e4."},
    {"tag": "cifar:akamaster", "model": "resnet56", "source": "cifar",
     "url": "https://github.com/akamaster/pytorch_resnet_cifar10/raw/master/pretrained_models/resnet56-4bfd9763.th",
     "file_name": "resnet56-4bfd9763.th",
     "sha256": None, "sha256_prefix": "4bfd9763",
     "top1": 93.39, "top5": None, "eval_dataset": "CIFAR-10 test",
     "input_size": (32, 32), "resize_size": None, "crop_pct": None, "interpolation": None,
     "mean": IMAGENET_MEAN, "std": IMAGENET_STD,
     "num_classes": 10, "license": "BSD-2-Clause", "hub_id": None,
     "note": "top1 = 100 - 6.61 (README); top5 not published. Checkpoint 'best_prec1' is 93.62. sha256 of the repo "
             "file (computed here, not published) = "
             "4bfd97631478d6b638d2764fd2baff3edb1d7d82252d54439343b6596b9b5367."},
    {"tag": "cifar:akamaster", "model": "resnet110", "source": "cifar",
     "url": "https://github.com/akamaster/pytorch_resnet_cifar10/raw/master/pretrained_models/resnet110-1d1ed7c2.th",
     "file_name": "resnet110-1d1ed7c2.th",
     "sha256": None, "sha256_prefix": "1d1ed7c2",
     "top1": 93.68, "top5": None, "eval_dataset": "CIFAR-10 test",
     "input_size": (32, 32), "resize_size": None, "crop_pct": None, "interpolation": None,
     "mean": IMAGENET_MEAN, "std": IMAGENET_STD,
     "num_classes": 10, "license": "BSD-2-Clause", "hub_id": None,
     "note": "top1 = 100 - 6.32 (README); top5 not published. The file's bytes were not available to this research "
             "(store omits files >= 4 MiB), so neither the prefix nor the checkpoint layout was checked against the "
             "file; the prefix follows the repo's documented sha256-prefix renaming (commit d1ea1080)."},
    {"tag": "cifar:akamaster", "model": "resnet1202", "source": "cifar",
     "url": "https://github.com/akamaster/pytorch_resnet_cifar10/raw/master/pretrained_models/"
            "resnet1202-f3b1deed.th",
     "file_name": "resnet1202-f3b1deed.th",
     "sha256": None, "sha256_prefix": "f3b1deed",
     "top1": 93.82, "top5": None, "eval_dataset": "CIFAR-10 test",
     "input_size": (32, 32), "resize_size": None, "crop_pct": None, "interpolation": None,
     "mean": IMAGENET_MEAN, "std": IMAGENET_STD,
     "num_classes": 10, "license": "BSD-2-Clause", "hub_id": None,
     "note": "top1 = 100 - 6.18 (README); top5 not published. File bytes not available to this research (>= 4 MiB), "
             "so prefix and layout unchecked against the file; prefix per the repo's sha256 renaming (d1ea1080)."},
)

PRESET_ROWS = _TORCHVISION_ROWS + _TIMM_ROWS + _CIFAR_ROWS

# keras.applications' own ImageNet weights, tag "imagenet": keras.applications downloads them (its file hash checked)
# and `reszoo.weights.keras_weights` ports them exactly. reszoo name -> the keras.applications constructor and its
# module, the reszoo builder arguments that reproduce its layout, and the published top-1 / top-5 (keras-team/keras-io
# templates/api/applications/index.md @ 01b6d6c4, "Available models": ImageNet validation set; the
# keras-applications README: 224x224, single centre crop). Preprocessing is the module's own `preprocess_input`:
# resnet "caffe" (RGB -> BGR, the ImageNet mean subtracted on 0..255 pixels), resnet_v2 "tf" (pixels to [-1, 1]).
KERAS_APPLICATIONS = {
    "resnet50": {"constructor": "ResNet50", "module": "resnet", "layout": {"stride_in_1x1": True},
                 "top1": 74.9, "top5": 92.1},
    "resnet101": {"constructor": "ResNet101", "module": "resnet", "layout": {"stride_in_1x1": True},
                  "top1": 76.4, "top5": 92.8},
    "resnet152": {"constructor": "ResNet152", "module": "resnet", "layout": {"stride_in_1x1": True},
                  "top1": 76.6, "top5": 93.1},
    "resnet50v2": {"constructor": "ResNet50V2", "module": "resnet_v2", "layout": {}, "top1": 76.0, "top5": 93.0},
    "resnet101v2": {"constructor": "ResNet101V2", "module": "resnet_v2", "layout": {}, "top1": 77.2, "top5": 93.8},
    "resnet152v2": {"constructor": "ResNet152V2", "module": "resnet_v2", "layout": {}, "top1": 78.0, "top5": 94.2},
}
