"""The ``globus-auto`` entry point (``pyproject.toml`` names ``main:cli``).

The command group itself lives in :mod:`globus_auto.cli.group`; this module
only names it, so the console script, ``python -m globus_auto`` and imports of
``globus_auto.main`` all reach the same group.
"""

from globus_auto.cli.group import cli

__all__ = ["cli"]
