"""The one exception type that reaches a user as a one-line message instead of a traceback."""


class UserError(Exception):
    """A problem the user can fix (bad input, missing file, unreachable broker).

    The CLIs print ``str(error)`` on one line and exit with ``exit_code``; the message should say what to fix.
    """

    exit_code = 2

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code
