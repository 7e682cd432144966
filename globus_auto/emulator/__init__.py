"""A local service that speaks the Globus Transfer and Auth APIs, for tests.

Collections are local directories; files really are copied and checksummed.
See ``Emulator`` for the Python API and ``cli.emulator_command`` for the
command line.
"""

from globus_auto.emulator.service import Emulator

__all__ = ["Emulator"]
