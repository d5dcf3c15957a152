"""fp32 gates compare logits, with a tolerance derived from the reference's own float noise.

Unit tests on hand-made outputs (the logit recovery, the tolerance rule, ties), then real fp32 artifacts of a
random-init ResNet-20: the correct TFLite and ONNX files pass; a TFLite file of the same model with weights
perturbed by 0.1 % (16,000 float32 epsilons, yet a model change no fp32 conversion may make) or with two conv
output channels swapped fails.
"""
import numpy as np
import pytest

from export.formats import FP32_GATE
from export.gates import PROBABILITY_FLOOR, as_logits, comparable, error_limit, merge_gates, parity_metrics
from export.verify import reference_noise, verify_runner


def softmax(logits):
    """float32 softmax, as a Keras model computes it (exp of max-shifted logits, underflowing to 0)."""
    z = np.asarray(logits, dtype="float32")
    e = np.exp(z - z.max(-1, keepdims=True))
    return (e / e.sum(-1, keepdims=True)).astype("float32")


def test_probabilities_are_compared_as_logits():
    z = np.array([[2.0, -1.0, 0.5], [0.0, 3.0, 1.0]])
    reference, outputs, space = comparable(softmax(z), softmax(z + [[0, 0, 1e-3], [0, 0, 0]]))
    assert space == "logits"
    shift = reference - z  # log p = z - logsumexp(z): the logits up to a per-row constant
    np.testing.assert_allclose(shift, shift[:, :1].repeat(3, axis=1), atol=1e-6)
    error = np.abs(outputs - reference).max()  # part of a logit change moves the row's logsumexp instead
    assert 0.5e-3 <= error <= 1e-3 + 1e-6  # log-p error lies within a factor 2 of the logit error


def test_underflowed_probabilities_compare_equal():
    """-200 and -300 both underflow to p = 0 in float32: no information is lost, so no error is reported."""
    reference, outputs, _ = comparable(softmax([[5.0, -200.0, 0.0]]), softmax([[5.0, -300.0, 0.0]]))
    assert reference[0, 1] == outputs[0, 1] == pytest.approx(np.log(PROBABILITY_FLOOR))
    assert np.abs(outputs - reference).max() < 1e-6
    assert as_logits(np.array([[0.0]]))[0, 0] == np.log(PROBABILITY_FLOOR)


def test_runtimes_flushing_differently_near_underflow_compare_equal():
    """Measured on random-init ResNet-50: Keras flushed a probability to 0 that onnxruntime gave as 2.1e-38
    (a normal float32); clipped at float32's smallest normal that was a 0.58 log error on a correct file."""
    reference = np.array([[1.0, 0.0, 3e-20]], dtype="float32")
    outputs = np.array([[1.0, 2.1059244e-38, 3e-20]], dtype="float32")
    parity = parity_metrics(reference, outputs, gate=FP32_GATE)
    assert parity["compared"] == "logits" and parity["max_abs_err"] == 0.0


def test_raw_outputs_are_compared_as_they_are():
    logits = np.array([[2.0, -1.0], [0.5, 4.0]])
    assert comparable(logits, logits + 1)[2] == "outputs"
    assert parity_metrics(logits, logits + 1)["max_abs_err"] == 1.0


def test_near_tie_of_a_saturated_softmax_passes_on_logits():
    """The random-init ResNet-50 case: logits in the hundreds saturate most rows to one-hot, one row is a
    near-tie. 6e-4 of logit rounding (the reference itself moves by 4.3e-4 between batch sizes) changes the
    tied probabilities by 1.5e-4, over the old gate (1e-4 of the probability range), the logits by 6e-4."""
    logits = np.array([[300.0, -150.0, 20.0], [-40.0, 410.0, 0.0], [55.0, 55.0, -300.0]])
    shifted = logits + [[0, 0, 0], [0, 0, 0], [0, 6e-4, 0]]
    assert np.abs(softmax(shifted) - softmax(logits)).max() > 1e-4  # what failed resnet50's fp32 ONNX file
    parity = parity_metrics(softmax(logits), softmax(shifted), noise=4.3e-4, gate=FP32_GATE)
    assert parity["compared"] == "logits"
    assert parity["max_abs_err"] == pytest.approx(3e-4, rel=0.05)  # the tie's logsumexp takes half of it
    assert parity["max_rel_err"] <= parity["tolerance"]
    assert parity["top1_agreement"] == 1.0  # the tie may go either way within the allowed error


def test_tolerance_is_a_multiple_of_the_noise_with_a_floor():
    gate = {"noise_multiple": 20.0, "noise_floor": 1e-4}
    assert error_limit(gate, 0.0) == 1e-4  # no observable noise: the floor
    assert error_limit(gate, 1e-5) == pytest.approx(2e-4)  # 20 x the noise above the floor
    assert error_limit({"max_rel_err": 3e-3, **gate}, 1.0) == 3e-3  # an explicit limit wins
    assert error_limit({"min_agreement": 0.98}, 1.0) is None  # quantized gates do not bound the error
    reference = np.array([[0.0, 10.0], [5.0, 1.0]])
    parity = parity_metrics(reference, reference + 0.01, noise=0.002, gate=gate)
    assert parity["reference_noise"] == 0.002 and parity["noise_rel_err"] == pytest.approx(0.002 / 10)
    assert parity["tolerance"] == pytest.approx(20 * 0.002 / 10) and parity["max_rel_err"] == pytest.approx(1e-3)


def test_explicit_max_rel_err_replaces_the_noise_rule():
    assert merge_gates(["fp32.max_rel_err=1e-3"])["fp32"] == {"min_agreement": 1.0, "max_rel_err": 1e-3,
                                                         "max_samples": FP32_GATE["max_samples"]}
    assert merge_gates(["fp32.noise_multiple=50"])["fp32"] == {**FP32_GATE, "noise_multiple": 50.0}


def test_only_ties_within_the_error_limit_count_as_agreement():
    reference = np.array([[1.0, 1.0 + 1e-6, -5.0], [3.0, 2.0, -5.0]])  # range 8: limit 1e-4 -> tie margin 1.6e-3
    swapped = reference[:, [1, 0, 2]]
    parity = parity_metrics(reference, swapped, gate={"max_rel_err": 1e-4})
    assert parity["top1_agreement"] == 0.5  # row 0 is a tie the limit allows; row 1 is a real flip
    assert parity_metrics(reference, swapped, gate={"max_rel_err": 0.0})["top1_agreement"] == 0.0


# ---------------------------------------------------------------------------------------- real fp32 artifacts
@pytest.fixture(scope="module")
def random_resnet(tmp_path_factory):
    """(model, x, reference runner, reference outputs, noise, folder): random-init ResNet-20 on 40 digits."""
    import keras

    import reszoo
    from export.data import sources as datasets
    from export.data.preprocess import make_spec, normalize
    from export.runtimes import KerasRunner

    keras.utils.set_random_seed(0)
    model = reszoo.create_model("resnet20", width=4, input_shape=(32, 32, 3), num_classes=10)
    _, held_out = datasets.split(datasets.load("digits", (32, 32)))
    x = normalize(held_out.x[:40], make_spec((32, 32))).astype("float32")
    runner = KerasRunner.from_model(model)
    reference = runner.predict(x)
    return model, x, reference, reference_noise(runner, x, reference), tmp_path_factory.mktemp("gates")


def write_artifact(model, folder, format):
    """An fp32 artifact of `model` written by the format's converter (the same call the pipeline makes)."""
    from export.converters import ConvertContext
    from export.formats import convert, variant
    from export.serving_graph import to_saved_model

    work = folder / f"work-{format}-{id(model)}"
    saved_model = to_saved_model(model, work / "saved_model")["path"]
    path = str(folder / f"{format}-{id(model)}.{format}")
    return convert(variant(format, "fp32"), ConvertContext(saved_model, str(work)), path)


def fp32_parity(path, format, fixture):
    from export.runtimes import load_runner

    _, x, reference, noise, _ = fixture
    return verify_runner(load_runner(path, format), "fp32", x, reference, latency_runs=0, noise=noise)


@pytest.mark.parametrize("format", ["tflite", "onnx"])
def test_correct_fp32_artifact_passes(random_resnet, format):
    model, folder = random_resnet[0], random_resnet[-1]
    parity = fp32_parity(write_artifact(model, folder, format), format, random_resnet)
    assert parity["passed"], parity["failures"]
    assert parity["compared"] == "logits" and parity["tolerance"] == error_limit(FP32_GATE, parity["noise_rel_err"])
    assert parity["max_rel_err"] < parity["tolerance"] / 10  # far inside: the gate is not a coin flip


def perturbed(model, relative):
    """A copy of `model` with every weight multiplied by 1 +- `relative` (random signs, seeded)."""
    import keras

    rng = np.random.default_rng(1)
    copy = keras.models.clone_model(model)
    copy.set_weights([w * (1 + relative * rng.choice([-1.0, 1.0], size=w.shape)) for w in model.get_weights()])
    return copy


def channels_swapped(model):
    """A copy of `model` whose first convolution has output channels 0 and 1 swapped (its BN is not)."""
    import keras

    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    conv = next(layer for layer in copy.layers if isinstance(layer, keras.layers.Conv2D))
    kernel, *rest = conv.get_weights()
    conv.set_weights([kernel[..., [1, 0, *range(2, kernel.shape[-1])]], *rest])
    return copy


@pytest.mark.parametrize("wrong", [lambda m: perturbed(m, 1e-3), channels_swapped], ids=["weights+-0.1%", "swap"])
def test_wrong_fp32_artifact_fails(random_resnet, wrong):
    model, folder = random_resnet[0], random_resnet[-1]
    parity = fp32_parity(write_artifact(wrong(model), folder, "tflite"), "tflite", random_resnet)
    assert not parity["passed"]
    assert parity["failures"][0].startswith("max abs error / output range")
    assert parity["max_rel_err"] > 5 * parity["tolerance"]  # far outside: fails on any CPU
