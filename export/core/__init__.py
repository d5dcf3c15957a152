"""export/core is the base floor of the export toolkit: errors and atomic files.

Nothing in `export.core` imports from `reszoo` or from the rest of `export` except `export.errors`, so every
other module (export and reszoo alike) may import it without cycles or TensorFlow.

Example:
    >>> from export.core.files import write_json, staged_dir, check_output_target
"""
