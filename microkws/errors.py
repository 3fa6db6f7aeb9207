"""The one exception type a user is meant to see."""


class UserError(ValueError):
    """Bad input or environment that the user can fix.

    The CLI prints the message as one line and exits with status 2, so the
    message must name the file or setting at fault and say what to do.
    """
