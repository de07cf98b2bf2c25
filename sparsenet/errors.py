"""User-facing errors.

Everything a user can get wrong (a name, a file, a shape, a number) raises a subclass of
``SparsenetError`` whose message says what was received and what would be accepted.  The CLI
prints these messages without a traceback and exits with status 2.  They subclass ValueError so
that library callers can catch them the scikit-learn way.
"""


class SparsenetError(ValueError):
    """A problem with the user's input, explained in the message."""


class DataNotFoundError(SparsenetError, FileNotFoundError):
    """Data files that are not where they were looked for."""


class CheckpointError(SparsenetError):
    """A checkpoint that is missing, corrupt, or not one of ours."""


class TrainingDiverged(SparsenetError):
    """Training whose loss became NaN or infinite (the message names the epoch and the recipe)."""
