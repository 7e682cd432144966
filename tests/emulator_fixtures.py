"""Fixtures that start the local Globus service (filled in with the emulator)."""
