"""The one exception type sepgraph raises for problems a user can fix."""


class SepgraphError(Exception):
    """A clear, user-facing error: says what is wrong, with which value, and what to do.

    Library functions name their own arguments in the message (``knn_k 0 must be ...``) and list them in
    ``arguments``; the command line prints the message alone (no traceback unless ``--debug``), with each
    listed argument written as the flag that sets it (``--knn-k 0 must be ...``).
    """

    def __init__(self, message: str, *, arguments: tuple[str, ...] = ()):
        super().__init__(message)
        self.arguments = tuple(arguments)


def input_shape_error(shape: tuple[int, ...], error: RuntimeError) -> SepgraphError:
    """The error for a model that cannot take inputs of ``shape`` (C, H, W)."""
    reason = str(error).splitlines()[0]
    return SepgraphError(f"the model cannot take inputs of shape {tuple(shape)} (C, H, W): {reason}")
