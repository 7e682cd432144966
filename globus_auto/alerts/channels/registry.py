"""The alert channels, in the order a run uses them.

Adding a channel is adding a module beside this one (see the package's
docstring for its names) and naming it in :data:`CHANNELS`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from globus_auto.alerts.channels import apprise_urls, command, mail
from globus_auto.alerts.message import Notice
from globus_auto.settings.model import Settings


class Channel(Protocol):
    """What every channel module provides."""

    PREFIX: str

    def configured(self, settings: Settings, job: str | None) -> list[str]: ...
    def describe(self, settings: Settings, channel: str) -> str: ...
    def verify(self, settings: Settings, channel: str) -> None: ...
    def send(
        self, settings: Settings, channel: str, notice: Notice, timeout: float
    ) -> None: ...
    def send_test(self, settings: Settings, channel: str, timeout: float) -> None: ...


CHANNELS: Sequence[Channel] = (mail, apprise_urls, command)


def channels_for(settings: Settings, job: str | None) -> list[str]:
    """The ids of the channels configured for ``job`` (None: for any job)."""
    return [c for module in CHANNELS for c in module.configured(settings, job)]


def module_for(channel: str) -> Channel:
    """The module that sends over ``channel`` (``mail``, ``notify:...``, ...)."""
    prefix = channel.partition(":")[0]
    for module in CHANNELS:
        if prefix == module.PREFIX:
            return module
    raise KeyError(channel)
