"""`reszoo import`: a torch checkpoint becomes a .keras file with preprocessing and labels that `reszoo export`
takes as it is; user mistakes are one line, exit 2, nothing written."""
import collections
import json
import zipfile

import numpy as np

from tests.helpers import assert_one_line_user_error
from tests.reszoo.weights.torch_reference import random_state_dict, reference_forward
from tests.reszoo.weights.torch_writers import save_torch_legacy, write_malicious_pickle

ARCH = dict(depth=20, width=16, option="A", num_classes=10)


def _checkpoint(folder, name="resnet20-12fca82f.th"):
    state = random_state_dict("cifar", seed=7, **ARCH)
    path = folder / name
    save_torch_legacy({"state_dict": collections.OrderedDict(("module." + k, v) for k, v in state.items())}, path)
    return state, path


def test_import_writes_a_model_with_the_presets_preprocessing(run_cli, tmp_path):
    import keras

    state, source = _checkpoint(tmp_path)  # the classic CIFAR file name: its preset's preprocessing applies
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(f"class{i}" for i in range(10)))
    output = tmp_path / "resnet20.keras"
    result = run_cli("import", source, "--model", "resnet20", "--labels", labels, "--check", "--output", output)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "layout: cifar" in result.stdout and "tensors mapped: 97" in result.stdout
    assert "PyTorch semantics on 2 random inputs: PASS" in result.stdout
    meta = json.loads(zipfile.ZipFile(output).read("reszoo.json"))
    assert meta["preprocessing"]["mean"] == [0.485, 0.456, 0.406] and meta["preprocessing"]["input_size"] == [32, 32]
    assert meta["labels"][3] == "class3" and meta["imported_from"]["layout"] == "cifar"
    model = keras.saving.load_model(output, safe_mode=True)
    x = np.random.default_rng(0).standard_normal((2, 32, 32, 3)).astype("float32")
    logits = reference_forward(state, "cifar", x, **ARCH)
    expected = np.exp(logits - logits.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)
    assert np.abs(model(x).numpy() - expected).max() <= 1e-5


def test_imported_model_exports_to_int8(run_cli, tmp_path):
    _, source = _checkpoint(tmp_path, "mine.th")
    output = tmp_path / "mine.keras"
    result = run_cli("import", source, "--model", "resnet20", "--mean", "0.5,0.5,0.5", "--std", "0.25,0.25,0.25",
                     "--output", output)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(zipfile.ZipFile(output).read("reszoo.json"))["preprocessing"]["std"] == [0.25] * 3
    exported = run_cli("export", output, "--format", "tflite", "--precision", "fp32", "--data", "digits",
                       "--output", tmp_path / "export")
    assert exported.returncode in (0, 1), exported.stderr[-2000:]  # random weights: the gates judge, not crash
    assert (tmp_path / "export" / "manifest.json").exists()


def test_user_mistakes_are_one_line_and_write_nothing(run_cli, tmp_path):
    _, source = _checkpoint(tmp_path)
    evil = tmp_path / "evil.pth"
    marker = write_malicious_pickle(evil, "zip")
    existing = tmp_path / "taken.keras"
    existing.write_bytes(b"keep")
    out = tmp_path / "out.keras"
    cases = [
        (("import", evil, "--model", "resnet20", "--output", out), "refused to load"),
        (("import", source, "--model", "resnet2O", "--output", out), "unknown model 'resnet2O'"),
        (("import", source, "--model", "resnet32", "--output", out), "missing: conv2_block4_1_bn"),
        (("import", source, "--model", "resnet20", "--output", existing), "exists; pass --force"),
        (("import", source, "--model", "resnet20", "--output", tmp_path / "x.h5"), "must end in .keras"),
        (("import", tmp_path / "none.pth", "--model", "resnet20", "--output", out), "does not exist"),
        (("import", source, "--model", "resnet20", "--mean", "0.5,0.5", "--output", out), "--mean '0.5,0.5'"),
        (("import", source, "--model", "resnet20", "--layout", "timm", "--output", out), "do not fit"),
    ]
    for args, fragment in cases:
        assert_one_line_user_error(run_cli(*args), fragment)
    assert not out.exists() and existing.read_bytes() == b"keep"
    import os

    assert not os.path.exists(marker)


def test_list_pretrained_shows_the_table(run_cli):
    result = run_cli("list", "--pretrained", "resnet2*")
    assert result.returncode == 0, result.stderr
    assert "cifar:akamaster" in result.stdout and "91.73" in result.stdout
