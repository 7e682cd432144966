"""Shared fixtures: the local Globus service and a loopback SMTP server.

The tests come in tiers, each a folder: ``unit/`` (pure functions, seconds),
``integration/`` (real SQLite, real temporary trees, a real SMTP server),
``emulator/`` (the local Globus service itself, driven over HTTP and through
globus-sdk), ``contract/`` (the Globus adapter against answers recorded from
the real service, and the same cases against the emulator) and ``e2e/`` (the
``globus-auto`` command against the emulator).
Helpers shared by the tiers live in ``support/``, which pytest puts on the
import path (``pythonpath`` in pyproject.toml).
"""

from emulator_fixtures import *  # noqa: F403
from smtp_fixtures import *  # noqa: F403
