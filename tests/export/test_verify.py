"""export.verify: parity metrics on hand-made outputs, gate checks and their messages, gate parsing, verify_runner."""
import numpy as np
import pytest

from export.core.errors import UserError
from export.gates import DEFAULT_GATES, check_gate, merge_gates, parity_metrics, parse_gate
from export.verify import verify_runner

REFERENCE = np.array([[0.7, 0.2, 0.1],
                      [0.1, 0.8, 0.1],
                      [0.3, 0.3, 0.4],
                      [0.6, 0.3, 0.1]])
LABELS = np.array([0, 1, 2, 1])  # reference gets 3 of 4 right (the last one wrong)
INT8 = DEFAULT_GATES["int8"]  # a gate on agreement only: REFERENCE's probabilities are compared as they are


def test_parity_metrics_identical():
    metrics = parity_metrics(REFERENCE, REFERENCE.copy(), LABELS, gate=INT8)
    assert metrics["samples"] == 4
    assert metrics["max_abs_err"] == metrics["mean_abs_err"] == metrics["max_rel_err"] == 0.0
    assert metrics["top1_agreement"] == 1.0
    assert metrics["accuracy"] == metrics["reference_accuracy"] == 0.75
    assert metrics["accuracy_delta"] == metrics["accuracy_drop"] == 0.0


def test_parity_metrics_numbers():
    """Errors, range-relative error, agreement and accuracy delta/drop computed by hand for one flipped sample."""
    outputs = REFERENCE.copy()
    outputs[1] = [0.5, 0.4, 0.1]  # sample 1 flips from class 1 (right) to class 0 (wrong): |err| 0.4, 0.4, 0
    outputs[0, 0] += 0.05
    metrics = parity_metrics(REFERENCE, outputs, LABELS, gate=INT8)
    assert metrics["max_abs_err"] == pytest.approx(0.4)
    assert metrics["mean_abs_err"] == pytest.approx((0.4 + 0.4 + 0.05) / 12)
    assert metrics["output_range"] == pytest.approx(0.8 - 0.1)
    assert metrics["max_rel_err"] == pytest.approx(0.4 / 0.7)
    assert metrics["top1_agreement"] == 0.75
    assert metrics["reference_accuracy"] == 0.75 and metrics["accuracy"] == 0.5
    assert metrics["accuracy_delta"] == pytest.approx(-25.0)
    assert metrics["accuracy_drop"] == pytest.approx(25.0)


def test_parity_metrics_improvement_is_no_drop():
    outputs = REFERENCE.copy()
    outputs[3] = [0.1, 0.8, 0.1]  # now right where the reference was wrong
    metrics = parity_metrics(REFERENCE, outputs, LABELS, gate=INT8)
    assert metrics["accuracy_delta"] == pytest.approx(25.0) and metrics["accuracy_drop"] == 0.0


def test_parity_metrics_without_usable_labels():
    """No accuracy keys without labels, or with labels that do not index the outputs' classes."""
    for labels in (None, np.array([0, 1, 5, 1])):
        metrics = parity_metrics(REFERENCE, REFERENCE, labels, gate=INT8)
        assert "accuracy" not in metrics and "accuracy_drop" not in metrics


def test_parity_metrics_constant_reference_uses_unit_range():
    metrics = parity_metrics(np.zeros((2, 3)), np.full((2, 3), 0.5))
    assert metrics["output_range"] == 1.0 and metrics["max_rel_err"] == 0.5


def test_parity_metrics_flattens_feature_maps():
    reference = np.arange(2 * 2 * 2 * 3, dtype="float32").reshape(2, 2, 2, 3)
    metrics = parity_metrics(reference, reference + 1.0)
    assert metrics["samples"] == 2 and metrics["max_abs_err"] == 1.0 and metrics["top1_agreement"] == 1.0


def test_check_gate_passes_and_messages():
    metrics = {"max_rel_err": 2e-4, "top1_agreement": 0.975, "accuracy_drop": 1.5}
    assert check_gate(metrics, "fp32", DEFAULT_GATES) == ["max abs error / output range 0.0002 > 0.0001",
                                                          "top-1 agreement 97.50% < 100.00%"]
    assert check_gate(metrics, "int8", DEFAULT_GATES) == ["top-1 agreement 97.50% < 98.00%",
                                                          "accuracy drop 1.50 points > 1"]
    assert check_gate(metrics, "fp16", DEFAULT_GATES) == ["top-1 agreement 97.50% < 99.50%"]
    assert check_gate({"max_rel_err": 1e-4, "top1_agreement": 1.0}, "fp32", DEFAULT_GATES) == []  # limits inclusive
    assert check_gate(metrics, "no-such-precision", DEFAULT_GATES) == []


def test_check_gate_skips_metrics_it_lacks():
    """Without labels there is no accuracy drop: only the agreement part of the int8 gate applies."""
    assert check_gate({"top1_agreement": 0.99}, "int8", DEFAULT_GATES) == []


def test_parse_gate():
    assert parse_gate("int8.min_agreement=0.95") == ("int8", "min_agreement", 0.95)
    assert parse_gate("fp32.max_rel_err=1e-3") == ("fp32", "max_rel_err", 1e-3)


@pytest.mark.parametrize("text", ["int8.min_agreement", "int8=0.9", "int8.min_agreement=high", ""])
def test_parse_gate_malformed(text):
    with pytest.raises(UserError, match=r"is not PRECISION\.KEY=VALUE"):
        parse_gate(text)


def test_parse_gate_unknown_names_list_allowed_values():
    with pytest.raises(UserError) as error:
        parse_gate("int4.min_agreement=0.9")
    assert "unknown precision 'int4'" in str(error.value)
    assert "allowed: fp32, fp16, dynamic, int8, int16x8" in str(error.value)
    with pytest.raises(UserError) as error:
        parse_gate("int8.min_agree=0.9")
    assert "unknown key 'min_agree'" in str(error.value)
    assert "allowed: max_rel_err, min_agreement, max_accuracy_drop" in str(error.value)


def test_merge_gates_from_strings_and_dicts():
    merged = merge_gates(["int8.min_agreement=0.9", "fp16.max_accuracy_drop=2"])
    assert merged["int8"] == {"min_agreement": 0.9, "max_accuracy_drop": 1.0}
    assert merged["fp16"] == {"min_agreement": 0.995, "max_accuracy_drop": 2.0}
    assert merge_gates({"fp32": {"max_rel_err": "1e-3"}})["fp32"] == {"max_rel_err": 1e-3, "min_agreement": 1.0,
                                                                     "max_samples": 64}
    assert merge_gates(None) == DEFAULT_GATES
    assert DEFAULT_GATES["int8"]["min_agreement"] == 0.98  # defaults are not modified by merging


@pytest.mark.parametrize("overrides, fragment", [
    (["int3.min_agreement=0.9"], "allowed: fp32, fp16"),
    ({"int8": {"bogus": 1}}, "allowed: max_rel_err, min_agreement, max_accuracy_drop"),
    ({"int4": {"min_agreement": 0.5}}, "unknown precision 'int4'"),
    ({"int8": {"min_agreement": "lots"}}, "is not PRECISION.KEY=VALUE"),
])
def test_merge_gates_errors(overrides, fragment):
    with pytest.raises(UserError, match=fragment.replace(".", r"\.")):
        merge_gates(overrides)


@pytest.fixture(scope="module")
def keras_runner():
    """KerasRunner over a tiny Conv2D+Dense classifier (seeded) and 12 random 8x8x3 inputs."""
    import keras

    from export.runtimes import KerasRunner

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3, activation="relu"),
                              keras.layers.Flatten(), keras.layers.Dense(5)])
    x = np.random.default_rng(0).normal(size=(12, 8, 8, 3)).astype("float32")
    return KerasRunner.from_model(model), x


def test_verify_runner_passes_against_its_own_outputs(keras_runner):
    runner, x = keras_runner
    reference = runner.predict(x)
    labels = reference.argmax(-1)
    parity = verify_runner(runner, "fp32", x, reference, labels, latency_runs=2, latency_warmup=1)
    assert parity["passed"] is True and parity["failures"] == []
    assert parity["samples"] == 12 and parity["top1_agreement"] == 1.0 and parity["accuracy"] == 1.0
    assert parity["max_rel_err"] <= 1e-6  # same model, same runtime: only batch-size rounding can differ
    assert parity["gate"] == DEFAULT_GATES["fp32"]
    assert parity["latency_ms_median"] > 0


def test_verify_runner_fails_a_perturbed_reference(keras_runner):
    """A reference with every top-1 moved to another class fails the fp32 gate with both reasons."""
    runner, x = keras_runner
    outputs = runner.predict(x)
    reference = outputs.copy()
    reference[np.arange(len(x)), (outputs.argmax(-1) + 1) % 5] += 100.0
    parity = verify_runner(runner, "fp32", x, reference, latency_runs=0)
    assert parity["passed"] is False and parity["latency_ms_median"] is None
    assert parity["top1_agreement"] == 0.0
    assert parity["failures"][0].startswith("max abs error / output range")
    assert parity["failures"][1] == "top-1 agreement 0.00% < 100.00%"


def test_verify_runner_uses_given_gates(keras_runner):
    runner, x = keras_runner
    reference = runner.predict(x) + 0.01
    gates = merge_gates(["fp32.max_rel_err=1"])
    assert verify_runner(runner, "fp32", x, reference, gates=gates, latency_runs=0)["passed"] is True
    assert verify_runner(runner, "fp32", x, reference, latency_runs=0)["passed"] is False


def test_fp32_rows_are_checked_on_their_gate_samples_and_other_rows_on_all(keras_runner):
    """fp32 checks the first `max_samples` held-out samples (a wrong float file is wrong on every input);
    `--gate fp32.max_samples=N` widens it, and agreement-gated precisions always take every sample."""
    runner, x = keras_runner
    reference = runner.predict(x)
    reference[-1, (reference[-1].argmax() + 1) % 5] += 100.0  # only the last sample differs
    narrow = merge_gates(["fp32.max_samples=8"])
    parity = verify_runner(runner, "fp32", x, reference, gates=narrow, latency_runs=0)
    assert parity["samples"] == 8 and parity["passed"] is True
    parity = verify_runner(runner, "fp32", x, reference, gates=merge_gates(["fp32.max_samples=12"]), latency_runs=0)
    assert parity["samples"] == 12 and parity["passed"] is False
    assert verify_runner(runner, "int8", x, reference, gates=narrow, latency_runs=0)["samples"] == 12
    assert DEFAULT_GATES["fp32"]["max_samples"] == 64 and "max_samples" not in DEFAULT_GATES["int8"]


def test_error_gated_precisions_compare_probabilities_as_logits():
    """fp32 bounds the error: softmax outputs are compared as log p (logits up to a per-row shift)."""
    outputs = REFERENCE.copy()
    outputs[0] = [0.6, 0.3, 0.1]
    metrics = parity_metrics(REFERENCE, outputs, LABELS, gate=DEFAULT_GATES["fp32"])
    assert metrics["compared"] == "logits"
    assert metrics["max_abs_err"] == pytest.approx(abs(np.log(0.3) - np.log(0.2)))
    assert parity_metrics(REFERENCE, outputs, LABELS, gate=INT8)["compared"] == "outputs"


def test_saturated_softmax_samples_are_counted_as_uninformative():
    """One class at 1.0 and the rest below 2^-100 leaves no logit to compare: such samples are not informative."""
    saturated = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 1e-35]])
    metrics = parity_metrics(saturated, saturated, gate=DEFAULT_GATES["fp32"])
    assert metrics["compared"] == "logits" and metrics["informative_samples"] == 0 and metrics["max_abs_err"] == 0
    assert parity_metrics(REFERENCE, REFERENCE, gate=DEFAULT_GATES["fp32"])["informative_samples"] == 4
    assert "informative_samples" not in parity_metrics(REFERENCE, REFERENCE, gate=INT8)  # outputs compared as they are
