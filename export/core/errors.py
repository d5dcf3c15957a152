"""The one exception type for user mistakes: the CLI prints it as one line and exits 2."""


class UserError(ValueError):
    """A mistake the user can fix (bad name, bad shape, missing data, existing output).

    Example:
        >>> raise UserError("unknown format 'tflit'; allowed: keras, onnx, saved_model, tflite")
        Traceback (most recent call last):
        ...
        export.core.errors.UserError: unknown format 'tflit'; allowed: keras, onnx, saved_model, tflite
    """
