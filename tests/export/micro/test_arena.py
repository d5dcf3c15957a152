"""`export.micro.arena`: TFLM's greedy planner replica, the live-set bound, and (when the `tflite-micro` package is
installed) the real TFLM interpreter running the array with the estimated arena."""
import importlib.util

import numpy as np
import pytest

from export.micro.arena import Buffer, aligned, estimate_arena, greedy_offsets, planned_buffers

HAS_TFLM = importlib.util.find_spec("tflite_micro") is not None


def graph_of(micro_files):
    from export.targets import read_graph

    return read_graph(micro_files["tflite"])


def test_greedy_places_largest_first_at_the_lowest_free_offset_and_reuses_dead_space():
    a, b, c, d = Buffer(64, 0, 1), Buffer(32, 1, 2), Buffer(32, 2, 3), Buffer(96, 4, 5)
    offsets = {buffer: offset for offset, buffer in greedy_offsets([a, b, c, d])}
    # d (largest) first at 0; a at 0 (not alive with d); b is alive with a: above it; c is alive with b only: at 0
    assert offsets == {d: 0, a: 0, b: 64, c: 0}


def test_equal_sizes_are_placed_later_buffer_first_as_tflm_does():
    first, second, third = Buffer(16, 0, 1), Buffer(16, 1, 2), Buffer(16, 0, 2)
    offsets = {buffer: offset for offset, buffer in greedy_offsets([first, second, third])}
    assert offsets == {third: 0, second: 16, first: 32}  # index order would give first 0, second 16, third 32


def live_sets(graph):
    """Independent of the module: per op, the activation bytes alive while it runs (aligned to 16)."""
    ops, tensors = graph["ops"], graph["tensors"]
    produced = {int(o): k for k, op in enumerate(ops) for o in op["outputs"]} | {int(i): -1 for i in graph["inputs"]}
    last = {}
    for k, op in enumerate(ops):
        for i in op["inputs"]:
            last[int(i)] = k
    last |= {int(o): len(ops) for o in graph["outputs"]}
    size = {i: aligned(np.prod(tensors[i]["shape"]) * np.dtype(tensors[i]["dtype"]).itemsize) for i in produced}
    return [sum(size[i] for i in produced if produced[i] <= k <= last.get(i, produced[i])) for k in range(len(ops))]


def test_estimate_holds_the_largest_live_set_plus_the_persistent_part(micro_files):
    graph = graph_of(micro_files)
    estimate = estimate_arena(graph)
    largest = max(live_sets(graph))
    assert estimate["largest_live_bytes"] == largest
    assert estimate["planned_bytes"] >= largest  # no planner beats the live set
    assert estimate["arena_bytes"] >= estimate["planned_bytes"] + estimate["persistent_bytes"]
    assert sum(b.size for b in planned_buffers(graph)) >= estimate["planned_bytes"]  # reuse, never growth


@pytest.mark.skipif(not HAS_TFLM, reason="the tflite-micro package (TFLM's Python interpreter) is not installed")
def test_tflm_runs_the_array_in_the_estimated_arena_and_matches_litert_reference_kernels(micro_files, capfd):
    from tflite_micro.python.tflite_micro import runtime

    from export.data import sources
    from export.data.preprocess import make_spec, normalize
    from export.micro.source import read_array
    from export.runtimes import quantize, load_runner

    flatbuffer = read_array(micro_files["cc"])
    estimate = estimate_arena(graph_of(micro_files))
    interpreter = runtime.Interpreter.from_bytes(flatbuffer, arena_size=estimate["arena_bytes"])
    litert = load_runner(micro_files["cc"], "micro")  # the pipeline's verification runner
    x = normalize(sources.split(sources.load("digits", (32, 32)))[1].x[:40], make_spec((32, 32)))
    q = quantize(x, litert.inputs[0]["quantization"], np.int8)
    for sample in q:
        interpreter.set_input(sample[None], 0)
        interpreter.invoke()
        litert.interpreter.set_tensor(litert.input["index"], sample[None])
        litert.interpreter.invoke()
        # within one int8 step: the int8 SOFTMAX at the end is computed differently (TFLM: fixed-point exp;
        # LiteRT's reference kernel: a table of float exps), and one output of the shipped test model lands on a
        # rounding boundary (-116 vs -115); the integer ops before it agree exactly, on every CPU
        micro, reference = interpreter.get_output(0), litert.interpreter.get_tensor(litert.output_details[0]["index"])
        assert np.abs(micro.astype(int) - reference.astype(int)).max() <= 1, (micro, reference)
    interpreter.print_allocations()
    head = int(capfd.readouterr().err.split("Arena allocation head ")[1].split()[0])
    assert head == estimate["planned_bytes"]  # the greedy replica places every buffer where TFLM does
