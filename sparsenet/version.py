"""The package version, on the ground floor: modules that record it in their outputs import it
from here, not from the package's ``__init__`` (which sits on top, re-exporting the pipelines)."""

__version__ = "0.1.0"
