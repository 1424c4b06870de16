"""One exception type for bad input: the CLI prints its message and exits 2, never a traceback."""


class ClinituneError(Exception):
    """A problem the user can fix. The message names the place (file, line, field) and the fix."""
