"""UserError: the one base of every error a user can cause.

Its message is one sentence that says what is wrong and what to do, shown as it is by the
command line (`error: ...`, exit 1) and by the dashboard (an error box); anything else is a
bug or the machine, and the visitor never sees its details.
"""


class UserError(Exception):
    """A choice, a file or a run a user can fix; the message says how, in one sentence."""
