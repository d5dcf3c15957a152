"""ONNX int8 per target CPU (export.onnx_targets): the host's default, the scheme each file really holds, the
saturation proof of x86-avx2 files, the records in manifest and metadata, slow-kernel marks; real exports."""
import json
import os

import numpy as np
import pytest

from export.core.cpu import cpu_facts
from export.onnx_targets import (SMALL_CONV_REASON, TARGETS, default_target, host_note, quantized_types,
                                 quantized_weights, resolve_target, saturation_problems)
from tests.helpers import assert_one_line_user_error

CPUINFO = {
    "avx512-vnni": ("model name : Xeon\nflags : fpu sse avx2 avx512f avx512_vnni amx_int8\n", "x86_64", "x86-vnni"),
    "avx-vnni": ("model name : Core\nflags : fpu avx2 avx_vnni\n", "x86_64", "x86-vnni"),
    "avx2-only": ("model name : EPYC 7002\nflags : fpu sse avx2\n", "x86_64", "x86-avx2"),
    "avx512-no-vnni": ("model name : Skylake-SP\nflags : avx2 avx512f\n", "x86_64", "x86-avx2"),
    "arm": ("processor : 0\nFeatures : fp asimd asimddp\nCPU part : 0xd0c\n", "aarch64", "arm"),
    "unknown": ("", "riscv64", "x86-avx2"),
}


@pytest.mark.parametrize("kind", CPUINFO)
def test_default_target_follows_the_cpu(kind):
    text, machine, expected = CPUINFO[kind]
    assert default_target(cpu_facts(text, machine=machine)) == expected


def test_unknown_target_is_a_user_error_and_a_known_one_passes():
    from export.core.errors import UserError

    assert resolve_target("arm") == "arm"
    with pytest.raises(UserError, match="allowed: x86-vnni, x86-avx2, arm"):
        resolve_target("x86-avx512")


def test_vnni_target_on_a_host_without_vnni_gets_one_note():
    avx2 = cpu_facts(CPUINFO["avx2-only"][0], machine="x86_64")
    assert "may saturate" in host_note("x86-vnni", avx2)
    assert host_note("x86-avx2", avx2) is None and host_note("x86-vnni", cpu_facts(*CPUINFO["avx512-vnni"][:2])) is None


def test_cli_refuses_an_unknown_onnx_target_in_one_line(run_cli, tmp_path):
    result = run_cli("export", "--format", "onnx", "--precision", "int8", "--onnx-target", "mips",
                     "--output", tmp_path / "out")
    assert_one_line_user_error(result, "--onnx-target", "'mips'", "x86-avx2")


@pytest.fixture(scope="module")
def avx2_export(tiny_keras_path, tmp_path_factory):
    """The tiny model exported to ONNX fp32/int8/dynamic for x86-avx2 (whatever this host is)."""
    from export.pipeline import export_model

    return export_model(tiny_keras_path, formats=["onnx"], precisions=["fp32", "int8", "dynamic"], data="digits",
                        output_dir=tmp_path_factory.mktemp("onnx_avx2") / "out", onnx_target="x86-avx2",
                        latency_runs=5, show_progress=False)


def entry(result, precision):
    return next(a for a in result.artifacts if a["precision"] == precision)


def test_avx2_file_cannot_saturate_and_passes_its_gate(avx2_export):
    """7-bit weights: no int16 overflow on any CPU, so the accuracy verified here is the AVX2 CPU's too."""
    path = os.path.join(avx2_export.output_dir, entry(avx2_export, "int8")["file"])
    assert saturation_problems(path) == []
    weights = quantized_weights(path)
    assert weights and max(int(np.abs(w.astype(np.int32)).max()) for w in weights.values()) <= 64
    assert quantized_types(path) == {"activations": ["uint8"], "weights": ["int8"]}
    assert entry(avx2_export, "int8")["parity"]["passed"], entry(avx2_export, "int8")["parity"]["failures"]


def test_manifest_and_metadata_record_the_target(avx2_export):
    from export.converters.onnx import read_metadata

    manifest = json.load(open(os.path.join(avx2_export.output_dir, "manifest.json")))
    assert manifest["options"]["onnx_target"] == "x86-avx2"
    int8, dynamic = entry(avx2_export, "int8"), entry(avx2_export, "dynamic")
    facts = {key: value for key, value in int8["onnx_target"].items() if key != "float_convs"}
    assert facts == {"name": "x86-avx2", "activations": "uint8", "weights": "int8", "reduce_range": True,
                     "float_below_channels": 16, "float_reason": SMALL_CONV_REASON}
    assert dynamic["onnx_target"]["weights"] == "uint8" and "onnx_target" not in entry(avx2_export, "fp32")
    path = os.path.join(avx2_export.output_dir, int8["file"])
    card = json.loads(read_metadata(path)["reszoo_manifest"])
    assert card["onnx_target"] == facts
    assert_listed_float_convs_are_the_small_ones(path, int8["onnx_target"]["float_convs"], 16)


def assert_listed_float_convs_are_the_small_ones(path, listed, min_channels):
    """The manifest's float convs are exactly the file's Convs without an int8 weight, all narrower than
    `min_channels`, and there are some (the tiny model's first stage)."""
    import onnx

    graph = onnx.load(path).graph
    quantized_weights = {node.output[0] for node in graph.node if node.op_type == "DequantizeLinear"}
    widths = {init.name: init.dims[0] for init in graph.initializer if init.dims}
    convs = [node for node in graph.node if node.op_type == "Conv"]
    float_convs = [node for node in convs if node.input[1] not in quantized_weights]
    assert listed and listed == [node.name for node in float_convs]
    assert all(widths[node.input[1]] < min_channels for node in float_convs)


@pytest.mark.parametrize("target", ["x86-vnni", "arm"])
def test_each_target_file_holds_the_types_of_its_table_row(avx2_export, target, tmp_path):
    from export.converters.onnx import quantize_int8
    from export.data.splits import prepare, split_for_spec

    spec = avx2_export.manifest["preprocessing"]
    train, _ = split_for_spec("digits", spec)
    path = quantize_int8(os.path.join(avx2_export.output_dir, entry(avx2_export, "fp32")["file"]),
                         tmp_path / "m.onnx", prepare(train.take(np.arange(64)), spec), target=target)
    row = TARGETS[target]
    assert quantized_types(path) == {"activations": [row.activations], "weights": [row.weights]}


def test_checker_rejects_full_8_bit_weights(avx2_export, tmp_path):
    """Per-channel symmetric 8-bit weights reach |w| = 127: 255*2*127 > 32767, which the checker must say."""
    from export.converters.onnx import quantize_int8
    from export.data.splits import prepare, split_for_spec

    spec = avx2_export.manifest["preprocessing"]
    train, _ = split_for_spec("digits", spec)
    path = quantize_int8(os.path.join(avx2_export.output_dir, entry(avx2_export, "fp32")["file"]),
                         tmp_path / "vnni.onnx", prepare(train.take(np.arange(64)), spec), target="x86-vnni")
    problems = saturation_problems(path)
    assert problems and all("255*2*127 = 64770 > 32767" in p for p in problems)


def test_dynamic_onnx_is_marked_slow_with_its_measured_ratio(avx2_export):
    dynamic = entry(avx2_export, "dynamic")
    assert "ConvInteger" in dynamic["slow_kernels"]["reason"]
    expected = dynamic["parity"]["latency_ms_median"] / entry(avx2_export, "fp32")["parity"]["latency_ms_median"]
    assert dynamic["slow_kernels"]["latency_vs_fp32"] == pytest.approx(expected, abs=0.01)
    assert "slow_kernels" not in entry(avx2_export, "int8")
    report = open(os.path.join(avx2_export.output_dir, "report.md")).read()
    assert "slow kernels (" in report and "ConvInteger" in report
