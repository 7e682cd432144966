"""globus-auto: keep a Globus destination directory a superset of a source directory."""

__version__ = "2.0.0"
