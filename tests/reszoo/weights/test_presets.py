"""Pretrained presets: the table, create_model(weights=TAG) through a download (a file:// origin made in the test,
so no network), the published-hash check, and the one-line offline failure."""
import collections
import hashlib

import numpy as np
import pytest

import reszoo
from reszoo.errors import UserError
from reszoo.weights import presets
from tests.reszoo.weights.torch_reference import random_state_dict, reference_forward
from tests.reszoo.weights.torch_writers import save_torch_legacy

ARCH = dict(depth=20, width=16, option="A", num_classes=10)


def _row(tag, url, file_name, sha256=None):
    base = dict(presets.find_preset("resnet20", "cifar:akamaster").__dict__)
    return {**base, "tag": tag, "url": url, "file_name": file_name, "sha256": sha256, "sha256_prefix": None}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RESZOO_CACHE", str(tmp_path / "cache"))
    return tmp_path


def test_table_rows_are_complete_and_tags_parse():
    rows = presets.list_presets()
    assert len(rows) >= 30
    assert {p.source for p in rows} == {"torchvision", "timm", "cifar"}
    for p in rows:
        assert presets.is_pretrained_tag(p.tag) and p.url and p.file_name and p.input_size and len(p.mean) == 3
        assert p.sha256_prefix is None or p.file_name.split("-")[-1].startswith(p.sha256_prefix)
    assert presets.find_preset("resnet50", "torchvision:IMAGENET1K_V2").top1 == pytest.approx(80.858)
    assert not presets.is_pretrained_tag("weights.weights.h5")


def test_unknown_tag_lists_the_models_tags():
    with pytest.raises(UserError, match="allowed: torchvision:IMAGENET1K_V1, torchvision:IMAGENET1K_V2"):
        reszoo.create_model("resnet50", weights="torchvision:IMAGENET1K_V9")


def test_create_model_downloads_checks_the_hash_and_imports(cache):
    state = random_state_dict("cifar", seed=5, **ARCH)
    origin = cache / "published" / "resnet20-test.th"
    origin.parent.mkdir()
    save_torch_legacy({"state_dict": collections.OrderedDict(("module." + k, v) for k, v in state.items())}, origin)
    digest = hashlib.sha256(origin.read_bytes()).hexdigest()
    presets.register_preset(_row("cifar:test-good", origin.as_uri(), "resnet20-test.th", digest))
    model = reszoo.create_model("resnet20", weights="cifar:test-good", classifier_activation=None)
    x = np.random.default_rng(0).standard_normal((2, 32, 32, 3)).astype("float32")
    expected = reference_forward(state, "cifar", x, **ARCH)
    assert np.abs(model(x).numpy() - expected).max() <= 1e-4 * np.abs(expected).max()
    assert (cache / "cache" / "reszoo" / "resnet20-test.th").exists()  # cached for the next call

    presets.register_preset(_row("cifar:test-bad-hash", origin.as_uri(), "resnet20-bad.th", "0" * 64))
    with pytest.raises(UserError, match="does not match the published 0000"):
        reszoo.create_model("resnet20", weights="cifar:test-bad-hash")
    assert not (cache / "cache" / "reszoo" / "resnet20-bad.th").exists()  # removed, not kept


def test_offline_download_fails_in_one_line_naming_the_url_and_import_route(cache):
    missing = (cache / "nowhere" / "resnet20-x.th").as_uri()
    presets.register_preset(_row("cifar:test-offline", missing, "resnet20-x.th"))
    with pytest.raises(UserError) as error:
        reszoo.create_model("resnet20", weights="cifar:test-offline")
    assert missing in str(error.value) and "reszoo import FILE --model resnet20" in str(error.value)
    assert "\n" not in str(error.value)


def test_wrong_head_and_imagenet_for_other_models_are_refused():
    with pytest.raises(UserError, match="has 10 classes, not num_classes=3; pass include_top=False"):
        reszoo.create_model("resnet20", weights="cifar:akamaster", num_classes=3)
    with pytest.raises(UserError, match="weights='imagenet' .* exists for resnet50"):
        reszoo.create_model("resnet20", weights="imagenet")


def test_one_list_holds_both_kinds_and_create_model_accepts_exactly_it():
    from reszoo.weights.preset_table import KERAS_APPLICATIONS

    rows = presets.list_pretrained()
    assert {p.source for p in rows} == {"torchvision", "timm", "cifar", "keras.applications"}
    assert [p.model for p in rows if p.tag == "imagenet"] == list(KERAS_APPLICATIONS)
    assert presets.list_presets() == [p for p in rows if p.tag != "imagenet"]
    for p in rows:
        assert presets.find_preset(p.model, p.tag) is p and presets.is_pretrained_tag(p.tag)
    with pytest.raises(UserError, match="no pretrained weights 'imagenet' for 'resnet18'; allowed: torchvision:"):
        reszoo.create_model("resnet18", weights="imagenet")
