"""The ``globus-auto`` entry point (``pyproject.toml`` names ``main:cli``).

The command group itself lives in :mod:`globus_auto.cli.group`; this module
only names it, so the console script, ``python -m globus_auto``, imports of
``globus_auto.main`` and ``python /path/to/globus_auto/main.py`` (run by path,
as the original LBNL script's cron lines run its ``main.py``) all reach the
same group, under the name ``globus-auto``.
"""

import os
import sys


def _import_from_the_package_parent() -> None:
    """Make ``import globus_auto`` find the package this file is in.

    Why: a file run by path is not imported as part of its package, and
    Python puts its own folder first on ``sys.path``. That folder would make
    the package's modules importable under top-level names (``cli``,
    ``settings``, ``logs``...) and, in a checkout that was never installed,
    ``globus_auto`` itself would not be found; its parent folder replaces it.
    """
    here = os.path.dirname(os.path.realpath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.realpath(p or os.curdir) != here]
    sys.path.insert(0, os.path.dirname(here))


if __name__ == "__main__":  # run by path: only then is sys.path changed
    _import_from_the_package_parent()

from globus_auto.cli.group import cli  # noqa: E402

__all__ = ["cli", "main"]


def main() -> None:
    """Run the command group as ``globus-auto``, however it was started."""
    cli(prog_name="globus-auto")


if __name__ == "__main__":
    main()
