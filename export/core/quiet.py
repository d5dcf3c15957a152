"""Keep native-library noise (TensorFlow/LiteRT start-up and converter chatter) off the terminal.

TensorFlow, the TFLite converter and LiteRT write INFO lines, CUDA probes and their settings straight to file
descriptor 2 from C++, past Python's logging. `native_noise_filtered` captures fd 2 around a block and then
writes back every line that is not in `NOISE`, so real warnings and errors still show (after the block).

Example:
    >>> with native_noise_filtered():
    ...     pass  # e.g. converter.convert() or Interpreter(...)
    >>> is_noise("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.")
    True
"""
import contextlib
import os
import re
import sys
import tempfile

# What is noise, one pattern per kind of line (anything else is written back).
NOISE = tuple(re.compile(pattern) for pattern in (
    r"^I\d{4} [\d:.]+ +\d+ \S+\] ",                                    # absl INFO lines (any source)
    r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$",
    r"^To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags\.$",
    r"^E\d{4} .*failed call to cuInit: .*\(303\)$",                     # CUDA probe on a machine without GPU
    r"^W\d{4} .*\] (Ignored output_format|Ignored drop_control_dependency|Skipping runtime version metadata)",
    r"^fully_quantize: \d+, inference_type: \d+, input_inference_type: \w+, output_inference_type: \w+$",
    r"^INFO: Created TensorFlow Lite XNNPACK delegate for CPU\.$",
))


def is_noise(line):
    """True when `line` (without its newline) is known native noise."""
    return any(pattern.search(line.rstrip("\n")) for pattern in NOISE)


@contextlib.contextmanager
def native_noise_filtered():
    """Capture fd 2 during the block; afterwards write back every captured line that is not noise."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [line for line in capture.read().decode(errors="replace").splitlines(keepends=True)
                    if not is_noise(line)]
            sys.stderr.write("".join(kept))
            sys.stderr.flush()


def import_tensorflow_quietly():
    """Import TensorFlow and Keras and probe the devices (where the CUDA lines come from) with noise filtered.

    Example:
        >>> import_tensorflow_quietly()
        >>> "tensorflow" in sys.modules
        True
    """
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with native_noise_filtered():
        import keras  # noqa: F401
        import tensorflow

        tensorflow.config.list_physical_devices()
