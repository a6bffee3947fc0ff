"""The one exception type for bad input: the CLI prints its message on one line and exits with code 2."""


class UserError(Exception):
    """Bad input from the user (unknown name, malformed file, impossible config). Never a bug."""
