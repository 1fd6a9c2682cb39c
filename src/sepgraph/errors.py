"""The one exception type sepgraph raises for problems a user can fix."""


class SepgraphError(Exception):
    """A clear, user-facing error: says what is wrong, with which value, and what to do.

    The command line prints the message alone (no traceback unless ``--debug``).
    """


def input_shape_error(shape: tuple[int, ...], error: RuntimeError) -> SepgraphError:
    """The error for a model that cannot take inputs of ``shape`` (C, H, W)."""
    reason = str(error).splitlines()[0]
    return SepgraphError(f"the model cannot take inputs of shape {tuple(shape)} (C, H, W): {reason}")
