"""export/core is the base floor: errors, atomic files and safe output folders, the model metadata,
native-noise filtering and the CPU facts.

Nothing in `export.core` imports from `reszoo` or from the rest of `export`, so every other module (export
and reszoo alike) may import it without cycles; none of it imports TensorFlow at import time.

Example:
    >>> from export.core.files import write_json, staged_dir, check_output_target
"""
