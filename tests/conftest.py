"""Shared fixtures. The emulator fixtures live in ``emulator_fixtures.py``."""

from emulator_fixtures import *  # noqa: F403
