"""The command line's own error: bad input that is not a spec error (exit status 2)."""


class UsageError(Exception):
    """Bad input to a command: `symprop` prints the message on one line and exits with 2."""
