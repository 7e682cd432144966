"""What every command gets from the group: the ``--config`` and ``-v`` options.

Imported by the command modules; imports nothing of the command line itself,
so the lazily loaded commands never import the group.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from globus_auto.settings.model import Settings

log = logging.getLogger("globus_auto")


@dataclass
class CliState:
    config_option: str | None
    verbose: int

    def settings(self) -> Settings:
        from globus_auto.settings.source import load_settings, resolve_config_path

        path = resolve_config_path(self.config_option, os.environ)
        return load_settings(path)
