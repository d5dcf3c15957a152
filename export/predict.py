"""Run an exported artifact on image files: top-k labels and probabilities per image.

ARTIFACT is a `.keras` file (preprocessing and labels from its embedded metadata), a `.tflite` / `.onnx` file
listed in the `manifest.json` of the export dir it sits in, or an export dir (one of its artifacts is chosen:
`artifact_name`, else `precision`, else the int8 artifact that passed its gate with the best parity, else
fp32; see `choose_entry`). Export dirs are not trusted: manifest paths are confined to the dir and every sha256
is checked before anything loads (`export.manifest.integrity_problems`); SavedModel artifacts are never run.

Images are read as the training and export loaders read them (`export.data.sources.read_image`: decoded at the
spec's channels, so RGBA drops alpha and grayscale is repeated to RGB; bilinear resize with antialias, to the
spec's scale size then center crop when it has `crop_pct`), then normalized (`export.data.preprocess.normalize`),
except for an artifact whose manifest `input` says uint8 pixels (`--raw-input`: preprocessing in its graph), which
gets the pixels (`export.data.preprocess.to_pixels`).
Softmax outputs are reported as probabilities, logits go through a softmax. An unreadable image does not stop
the others: its result holds an "error" line instead of "top_k".

Example:
    >>> import tempfile
    >>> from PIL import Image
    >>> from export.data.sources import load
    >>> image = os.path.join(tempfile.mkdtemp(), "7.png")  # a digit 7 as a PNG file
    >>> Image.fromarray(load("digits", (32, 32)).x[7].astype("uint8")).save(image)
    >>> results = predict("saved_models/resnet20_digits.keras", [image, "missing.png"], top_k=3)
    >>> results[0]["top_k"][0]["label"], results[1]["error"]
    ('7', "image 'missing.png' does not exist")
"""
import dataclasses
import os

import numpy as np

from export.core.errors import UserError
from export.formats import FORMATS
from export.manifest import MANIFEST_FILE
from export.raw_input import takes_pixels

NOT_RUN = {"saved_model": "SavedModel graphs can run arbitrary TF ops, so predict does not run them"}  # format -> why
SUFFIX_FORMATS = {fmt.suffix: fmt.name for fmt in FORMATS.values() if fmt.suffix}  # ".tflite" -> "tflite"
DEFAULT_PRECISIONS = ("int8", "fp32")  # an export dir's default: the first of these with an artifact that passed
# how far a row of probabilities may sum from 1, by precision: a quantized softmax rounds each class to its scale
SUM_SLACK_PER_CLASS = {"int8": 1 / 256, "int16x8": 1 / 65536}


@dataclasses.dataclass(frozen=True)
class Artifact:
    """What runs: its path and format, its precision (None for a plain .keras), preprocessing spec, labels, and
    why it was chosen (a short phrase for the output).

    Example:
        >>> Artifact("m.keras", "keras", None, {}, None, "given").describe()
        'm.keras (keras, given)'
    """

    path: str
    format: str
    precision: str | None
    spec: dict
    labels: list | None
    reason: str
    pixels: bool = False  # takes uint8 pixels (preprocessing in the graph, export.raw_input)

    def describe(self):
        """One line: path (format precision, reason)."""
        kind = " ".join(filter(None, (self.format, self.precision)))
        return f"{self.path} ({kind}, {self.reason})"

    def as_dict(self):
        """The JSON view: path, format, precision, reason."""
        return {"path": self.path, "format": self.format, "precision": self.precision, "reason": self.reason}


def format_of(path):
    """The export format of an artifact file, from its suffix; UserError listing the allowed suffixes.

    Example:
        >>> format_of("m_int8.tflite")
        'tflite'
    """
    suffix = os.path.splitext(os.fspath(path))[1].lower()
    if suffix not in SUFFIX_FORMATS:
        raise UserError(f"cannot predict with {os.fspath(path)!r}: allowed: an export dir or a "
                        f"{', '.join(SUFFIX_FORMATS)} file")
    return SUFFIX_FORMATS[suffix]


def checked_spec(spec, where):
    """`spec` validated by `check_spec`; a missing or incomplete spec is a UserError naming `where`."""
    from export.data.preprocess import check_spec

    try:
        return check_spec(spec if isinstance(spec, dict) else {})
    except ValueError as error:
        raise UserError(f"{where}: {error}") from None


def verified_manifest(export_dir):
    """The manifest of `export_dir` once every sha256 matches (`integrity_problems`); UserError otherwise.

    Example:
        >>> import tempfile
        >>> from export.manifest import write_json
        >>> folder = tempfile.mkdtemp()
        >>> write_json(os.path.join(folder, MANIFEST_FILE),
        ...            {"artifacts": [{"file": "m.tflite", "format": "tflite", "precision": "fp32",
        ...                            "sha256": "0" * 64}]})
        >>> verified_manifest(folder)
        Traceback (most recent call last):
        ...
        export.core.errors.UserError: '/...' failed its integrity check (sha256 vs manifest.json), nothing was run: \
m.tflite: missing (listed in manifest.json)
    """
    from export.manifest import integrity_problems, read_manifest

    manifest = read_manifest(export_dir)
    problems = integrity_problems(export_dir, manifest)
    if problems:
        raise UserError(f"{os.fspath(export_dir)!r} failed its integrity check (sha256 vs {MANIFEST_FILE}), "
                        f"nothing was run: {'; '.join(problems)}")
    return manifest


def listing(entries):
    """What a manifest offers, for error lines: listing([{"file": "a.onnx", "format": "onnx", "precision": "fp32"}])
    == 'a.onnx (onnx fp32)'."""
    return ", ".join(f"{e['file']} ({e['format']} {e['precision']})" for e in entries)


def parity_rank(entry):
    """Sort key, best first: passed its gate, a converted artifact before a `.keras` (whose parity is against
    itself), then highest top-1 agreement, then lowest max_rel_err.

    Example:
        >>> entries = [{"format": "keras", "parity": {"passed": True, "max_rel_err": 0.0}},
        ...            {"format": "onnx", "parity": {"passed": False}}, {"format": "onnx", "parity": {"passed": True}}]
        >>> [(e["format"], e["parity"]["passed"]) for e in sorted(entries, key=parity_rank)]
        [('onnx', True), ('keras', True), ('onnx', False)]
    """
    parity = entry.get("parity") or {}
    return (not parity.get("passed"), entry["format"] == "keras", -(parity.get("top1_agreement") or 0.0),
            parity.get("max_rel_err") or np.inf)


def _runnable(entries):
    return [e for e in entries if e["format"] not in NOT_RUN]


def _by_name(entries, name):
    found = [e for e in entries if name in (e["file"], os.path.basename(e["file"]))]
    return found, f"no artifact {name!r}"


def _by_precision(entries, precision):
    return _runnable([e for e in entries if e["precision"] == precision]), f"no runnable {precision!r} artifact"


def _default(entries, _):
    for precision in DEFAULT_PRECISIONS:
        found = [e for e in _by_precision(entries, precision)[0] if (e.get("parity") or {}).get("passed")]
        if found:
            return found, None
    return [], f"no {' or '.join(DEFAULT_PRECISIONS)} artifact passed its gate; choose one with --artifact"


# (selector, how it is given, phrase for the output): the first one given picks the candidates
CHOOSERS = ((_by_name, "artifact_name", "--artifact"), (_by_precision, "precision", "--precision"),
            (_default, None, "default: best-parity {precision} that passed its gate"))


def choose_entry(export_dir, manifest, artifact_name=None, precision=None):
    """(manifest entry, reason) to run: by name, else by precision (the best parity among them), else the
    default (`DEFAULT_PRECISIONS`); UserError listing what the manifest has when nothing matches.

    Example:
        >>> manifest = {"artifacts": [
        ...     {"file": "m_fp32.tflite", "format": "tflite", "precision": "fp32", "parity": {"passed": True}},
        ...     {"file": "m_int8.tflite", "format": "tflite", "precision": "int8", "parity": {"passed": True}}]}
        >>> choose_entry("exports/m", manifest)
        ({'file': 'm_int8.tflite', ...}, 'default: best-parity int8 that passed its gate')
        >>> choose_entry("exports/m", manifest, precision="fp32")[0]["file"]
        'm_fp32.tflite'
    """
    given = {"artifact_name": artifact_name, "precision": precision, None: True}
    select, key, phrase = next(row for row in CHOOSERS if given[row[1]])
    found, missing = select(manifest["artifacts"], given[key])
    if not found:
        raise UserError(f"{missing} in {os.fspath(export_dir)!r}; {MANIFEST_FILE} lists: "
                        f"{listing(manifest['artifacts'])}")
    entry = min(found, key=parity_rank)
    if entry["format"] in NOT_RUN:
        raise UserError(f"{entry['file']} is not run: {NOT_RUN[entry['format']]}")
    return entry, phrase.format(precision=entry["precision"])


def from_export_dir(export_dir, artifact_name=None, precision=None):
    """The Artifact an export dir runs (see `choose_entry`), after its integrity check."""
    from export.manifest import artifact_path

    manifest = verified_manifest(export_dir)
    entry, reason = choose_entry(export_dir, manifest, artifact_name, precision)
    spec = checked_spec(manifest.get("preprocessing"), os.path.join(export_dir, MANIFEST_FILE))
    return Artifact(artifact_path(export_dir, entry["file"]), entry["format"], entry["precision"], spec,
                    manifest.get("labels"), reason, takes_pixels(entry))


def listed_entry(path, manifest, export_dir):
    """The manifest entry of file `path` (compared by real path), or None."""
    from export.manifest import artifact_path

    real = os.path.realpath(path)
    return next((e for e in manifest["artifacts"] if artifact_path(export_dir, e["file"]) == real), None)


def from_listed_file(path):
    """The Artifact of a .tflite/.onnx file: spec and labels from the manifest of its dir, which must list it."""
    export_dir = os.path.dirname(os.path.abspath(path))
    unlisted = UserError(f"{os.fspath(path)!r} is not listed in a {MANIFEST_FILE} next to it; predict needs its "
                         "export dir's manifest for preprocessing and labels")
    if not os.path.isfile(os.path.join(export_dir, MANIFEST_FILE)):
        raise unlisted
    manifest = verified_manifest(export_dir)
    entry = listed_entry(path, manifest, export_dir)
    if entry is None:
        raise unlisted
    spec = checked_spec(manifest.get("preprocessing"), os.path.join(export_dir, MANIFEST_FILE))
    return Artifact(os.fspath(path), entry["format"], entry["precision"], spec, manifest.get("labels"), "given",
                    takes_pixels(entry))


def from_keras_file(path):
    """The Artifact of a .keras file: spec and labels from its embedded metadata (no spec: pixels/255 at the
    model's input size, as export assumes)."""
    from export.core.metadata import read_metadata

    if not os.path.isfile(path):
        raise UserError(f"model file {os.fspath(path)!r} does not exist")
    metadata = read_metadata(path)
    spec = metadata.get("preprocessing")
    return Artifact(os.fspath(path), "keras", None, spec, metadata.get("labels"), "given")


def choose_artifact(artifact, artifact_name=None, precision=None):
    """The Artifact to run for ARTIFACT (an export dir, a .keras, or a .tflite/.onnx listed in its dir's manifest).

    `artifact_name` / `precision` only apply to an export dir. Example:
        >>> artifact = choose_artifact("saved_models/resnet20_digits.keras")
        >>> artifact.format, artifact.labels[:3], artifact.reason
        ('keras', ['0', '1', '2'], 'given')
    """
    if os.path.isdir(artifact):
        return from_export_dir(artifact, artifact_name, precision)
    if artifact_name or precision:
        raise UserError("--artifact and --precision choose within an export dir; "
                        f"{os.fspath(artifact)!r} is a single file")
    if not os.path.exists(artifact):
        raise UserError(f"artifact {os.fspath(artifact)!r} does not exist")
    fmt = format_of(artifact)
    return from_keras_file(artifact) if fmt == "keras" else from_listed_file(artifact)


def spec_for(artifact, runner):
    """The artifact's spec, or for a .keras without one the default for its input shape (pixels/255)."""
    from export.data.preprocess import default_spec_for_input

    if artifact.spec is not None:
        return checked_spec(artifact.spec, artifact.path)
    return default_spec_for_input(tuple(d if d > 0 else None for d in runner.inputs[0]["shape"][1:]))


def load_image(path, spec, pixels=False):
    """One image file as model input (HWC float32): read as the loaders read, resized (and center-cropped when
    the spec has crop_pct), normalized; with `pixels`, the uint8 pixels instead (for a --raw-input artifact).
    UserError (one line) for a missing or unreadable file.

    Example:
        >>> import tempfile
        >>> from PIL import Image
        >>> from export.data.preprocess import make_spec
        >>> path = os.path.join(tempfile.mkdtemp(), "cat.png")
        >>> Image.new("RGBA", (64, 48)).save(path)  # RGBA: alpha is dropped
        >>> load_image(path, make_spec((32, 32))).shape
        (32, 32, 3)
    """
    from export.data.preprocess import center_crop, normalize, scale_size, to_pixels
    from export.data.sources import read_image

    if not os.path.exists(path):
        raise UserError(f"image {os.fspath(path)!r} does not exist")
    raw = center_crop(read_image(os.fspath(path), scale_size(spec), spec["channels"])[None], tuple(spec["input_size"]))
    return to_pixels(raw)[0] if pixels else normalize(raw, spec)[0].astype("float32")


def softmax(logits):
    """Row-wise softmax, float64. Example: softmax(np.zeros((1, 2))).tolist() == [[0.5, 0.5]]."""
    shifted = np.asarray(logits, dtype="float64") - np.max(logits, axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(-1, keepdims=True)


def as_probabilities(outputs, precision=None):
    """Probabilities (N, classes), rows summing to 1: softmax outputs as they are (renormalized, since a
    quantized softmax rounds each class), anything else through a softmax.

    Example:
        >>> as_probabilities(np.array([[0.25, 0.75]])).tolist(), as_probabilities(np.array([[0.0, 0.0]])).tolist()
        ([[0.25, 0.75]], [[0.5, 0.5]])
    """
    from export.gates import PROBABILITY_SUM_TOLERANCE, is_probabilities

    outputs = np.asarray(outputs, dtype="float64").reshape(len(outputs), -1)
    slack = max(PROBABILITY_SUM_TOLERANCE, SUM_SLACK_PER_CLASS.get(precision, 0.0) * outputs.shape[-1])
    return outputs / outputs.sum(-1, keepdims=True) if is_probabilities(outputs, slack) else softmax(outputs)


def top_k(probabilities, labels, k):
    """The `k` most probable classes of one row, best first (ties: lower index first); labels fall back to indices.

    Example:
        >>> top_k(np.array([0.1, 0.6, 0.3]), ["a", "b", "c"], 2)
        [{'label': 'b', 'index': 1, 'probability': 0.6}, {'label': 'c', 'index': 2, 'probability': 0.3}]
    """
    order = np.argsort(-probabilities, kind="stable")[:k]
    names = list(labels or [])
    return [{"label": names[i] if i < len(names) else str(int(i)), "index": int(i),
             "probability": float(probabilities[i])} for i in order]


def read_images(images, spec, pixels=False):
    """({image: model input} of the readable images, {image: error line} of the others), in input order."""
    inputs, errors = {}, {}
    for image in images:
        try:
            inputs[image] = load_image(image, spec, pixels)
        except UserError as error:
            errors[image] = str(error)
    return inputs, errors


def refuse_several_outputs(artifact, runner):
    """UserError for a model with several outputs (a feature backbone): top-k labels need one class-score
    output, and feature maps have no labels; such models are run with `export.runtimes` (`predict_all`)."""
    if len(runner.outputs) > 1:
        raise UserError(f"cannot predict with {artifact.path!r}: it has {len(runner.outputs)} outputs "
                        f"({', '.join(runner.output_names)}); predict needs one class-score output "
                        "(run feature models with export.runtimes.load_runner(...).predict_all)")


def run_artifact(artifact, images, top_k_count=5, threads=None):
    """Per-image results of `artifact` (an Artifact): {"image", "top_k"} or {"image", "error"}, in input order."""
    from export.runtimes import load_runner

    runner = load_runner(artifact.path, artifact.format, threads)
    refuse_several_outputs(artifact, runner)
    spec = spec_for(artifact, runner)
    inputs, errors = read_images([os.fspath(image) for image in images], spec, artifact.pixels)
    probabilities = {}
    if inputs:
        rows = as_probabilities(runner.predict(np.stack(list(inputs.values()))), artifact.precision)
        probabilities = dict(zip(inputs, rows))
    return [{"image": image, "error": errors[image]} if image in errors else
            {"image": image, "top_k": top_k(probabilities[image], artifact.labels, top_k_count)}
            for image in map(os.fspath, images)]


def predict(artifact, images, top_k=5, artifact_name=None, precision=None, threads=None):
    """Top-`top_k` predictions of ARTIFACT (export dir, .keras, or a listed .tflite/.onnx) for each image file.

    Returns one dict per image, in order: {"image", "top_k": [{"label", "index", "probability"}]}, or
    {"image", "error"} for an image that could not be read. UserError for a bad artifact or choice.

    Example:
        >>> predict("saved_models/resnet20_digits.keras", ["7.png"], precision="int8")
        Traceback (most recent call last):
        ...
        export.core.errors.UserError: --artifact and --precision choose within an export dir; \
'saved_models/resnet20_digits.keras' is a single file
    """
    return run_artifact(choose_artifact(artifact, artifact_name, precision), images, top_k, threads)
