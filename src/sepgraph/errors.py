"""The one exception type sepgraph raises for problems a user can fix."""


class SepgraphError(Exception):
    """A clear, user-facing error: says what is wrong, with which value, and what to do.

    The command line prints the message alone (no traceback unless ``--debug``).
    """
