"""Models with several outputs (feature-map backbones, heads): one naming and order for every runtime.

Names are the SavedModel signature's output keys, which `model.export` derives from the model's outputs:
`output_0`, `output_1`, ... for one tensor or a list, the keys for a dict. Every runner (Keras, SavedModel,
TFLite, ONNX) lists and returns its outputs under these names in `natural_order`: numbers compared as
numbers, so `output_2` comes before `output_10`. TFLite sorts its signature outputs as strings and numbers
its tensors by graph position, ONNX keeps tf2onnx's order: they are matched by name, never by position.

Reference outputs of a multi-output model are an `Outputs` (arrays by name, and which of them are class scores);
a model with one (N, classes) output keeps the plain array of before, so classifiers are verified as always.

Example:
    >>> natural_order(["output_10", "output_2", "output_0"])
    ['output_0', 'output_2', 'output_10']
    >>> sorted(outputs_by_name([1, 2]).items())
    [('output_0', 1), ('output_1', 2)]
"""
import dataclasses
import re

import numpy as np

SINGLE_OUTPUT = "output_0"  # the signature key of a model with one output


def natural_key(name):
    """Sort key of an output name: digit runs compare as numbers ("output_2" < "output_10")."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name) if part]


def natural_order(names):
    """`names` sorted by `natural_key`: the output order every runner uses."""
    return sorted(names, key=natural_key)


def outputs_by_name(structure):
    """{signature key: value} of a model's output structure: one tensor, a list/tuple, or a dict.

    The keys are those `model.export` gives the serving signature (list index i -> `output_i`).

    Example:
        >>> list(outputs_by_name({"p4": 1, "p3": 2})), list(outputs_by_name(7))
        (['p4', 'p3'], ['output_0'])
    """
    if isinstance(structure, dict):
        return dict(structure)
    if isinstance(structure, (list, tuple)):
        return {f"output_{i}": value for i, value in enumerate(structure)}
    return {SINGLE_OUTPUT: structure}


def keras_output_shapes(model):
    """{signature key: shape} of a Keras model's outputs, in `natural_order`.

    `model.output_shape` is one shape, or a list in flat order (a dict's keys sorted); a dict's keys come from
    `model.output` (only read then: a loaded Sequential that was never called has no `output`).
    """
    shapes = model.output_shape
    if _is_shape(shapes):
        named = {SINGLE_OUTPUT: shapes}
    elif isinstance(model.output, dict):
        named = {key: tensor.shape for key, tensor in model.output.items()}
    else:
        named = outputs_by_name(list(shapes))
    return {name: tuple(named[name]) for name in natural_order(named)}


def _is_shape(value):
    return isinstance(value, tuple) and all(d is None or isinstance(d, int) for d in value)


def in_order(structure, names):
    """The float32 arrays of an output structure listed in the order of `names`."""
    named = outputs_by_name(structure)
    return [np.asarray(named[name], dtype="float32") for name in names]


@dataclasses.dataclass
class Outputs:
    """Reference outputs of a model with several outputs (or one that is not class scores).

    arrays: {name: (N, ...) float32} in `natural_order`; class_scores: names of the (N, classes) outputs,
    verified like a classifier (top-1 agreement, accuracy); the others are features.
    """

    arrays: dict
    class_scores: tuple = ()

    @property
    def names(self):
        return list(self.arrays)

    def first_class_scores(self):
        """The first class-score array, or None when every output is a feature."""
        return self.arrays[self.class_scores[0]] if self.class_scores else None


def head(outputs, count):
    """The first `count` samples of reference outputs (an array or `Outputs`)."""
    if isinstance(outputs, Outputs):
        return Outputs({name: array[:count] for name, array in outputs.arrays.items()}, outputs.class_scores)
    return outputs[:count]


def is_class_scores(array, num_classes=None):
    """True for an (N, classes) output: 2-D, more than one column, as many as `num_classes` when known."""
    return array.ndim == 2 and array.shape[-1] > 1 and (not num_classes or array.shape[-1] == num_classes)


def reference_outputs(runner, x, num_classes=None):
    """The reference's outputs on `x`: a plain array for one (N, classes) output (classifiers, verified as
    before), else an `Outputs` with every output by name.

    Example:
        >>> import reszoo
        >>> from export.runtimes import KerasRunner
        >>> backbone = reszoo.create_model("resnet20", width=4, features_only=True, input_shape=(8, 8, 3))
        >>> x = np.zeros((2, 8, 8, 3), "float32")
        >>> reference_outputs(KerasRunner.from_model(backbone), x, num_classes=10).names
        ['output_0', 'output_1', 'output_2']
    """
    arrays = dict(zip(runner.output_names, runner.predict_all(x)))
    if len(arrays) == 1 and next(iter(arrays.values())).ndim == 2:
        return next(iter(arrays.values()))
    return Outputs(arrays, tuple(n for n, a in arrays.items() if is_class_scores(a, num_classes)))


def class_scores_of(reference):
    """The array accuracy is measured on: the plain reference, or the first class-score output (else None)."""
    return reference.first_class_scores() if isinstance(reference, Outputs) else reference
