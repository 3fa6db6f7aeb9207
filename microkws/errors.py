"""The one exception type a user is meant to see, and how a library's error becomes part of its message."""


class UserError(ValueError):
    """Bad input or environment that the user can fix.

    The CLI prints the message as one line and exits with status 2, so the
    message must name the file or setting at fault and say what to do.
    """


def first_line(error):
    """The first line of `error`'s message (TensorFlow's run on for pages), or its type's name."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
