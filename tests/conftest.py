"""Shared fixtures: the local Globus service and a loopback SMTP server."""

from emulator_fixtures import *  # noqa: F403
from smtp_fixtures import *  # noqa: F403
