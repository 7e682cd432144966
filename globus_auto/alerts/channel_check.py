"""Where alerts go, and a test message over every channel, for ``check``.

Plain values out (one :class:`ChannelCheck` per channel); the command line
turns them into lines of its checklist. Nothing here prints.
"""

from __future__ import annotations

from dataclasses import dataclass

from globus_auto.alerts.channels import apprise_urls, registry
from globus_auto.errors import ConfigError, NotifyError
from globus_auto.settings.model import Settings

TEST_HINT = (
    "send a test message over every channel with: globus-auto check --test-notify"
)
NOBODY = "no EMAIL_RECIPIENTS: problems are only logged, nobody is told"
NOBODY_FIX = (
    "set EMAIL_SENDER and EMAIL_RECIPIENTS (or NOTIFY_URLS, or ON_ALERT_COMMAND) "
    "in the config"
)
FIXES = {
    "mail": "check EMAIL_HOST, EMAIL_PORT, EMAIL_SECURITY and the login",
    "notify": "check the URL against github.com/caronc/apprise/wiki and that this "
    "machine reaches the service",
    "command": "run the command by hand with GLOBUS_AUTO_EVENT=test; it must exit 0 "
    "within NOTIFY_TIMEOUT seconds",
}


@dataclass(frozen=True)
class ChannelCheck:
    """One channel: ``ok`` True or False when a test was sent, None when not."""

    name: str
    ok: bool | None
    detail: str
    fix: str = ""
    nobody: bool = False  # no channel at all is configured


def check_channels(settings: Settings, send: bool) -> list[ChannelCheck]:
    """One result per configured channel; with ``send``, each gets a test message."""
    channels = registry.channels_for(settings, None)
    if not channels:
        return [ChannelCheck("mail", False if send else None, NOBODY, NOBODY_FIX, True)]
    return [_check_one(settings, channel, send) for channel in channels]


def _check_one(settings: Settings, channel: str, send: bool) -> ChannelCheck:
    module = registry.module_for(channel)
    name = _name(settings, channel)
    where = module.describe(settings, channel)
    try:
        module.verify(settings, channel)
        if not send:
            return ChannelCheck(name, None, f"alerts go {where}", TEST_HINT)
        module.send_test(settings, channel, settings.notify_timeout)
    except (NotifyError, ConfigError) as exc:
        return ChannelCheck(name, False, str(exc), FIXES[module.PREFIX])
    return ChannelCheck(name, True, f"sent a test message {where}")


def _name(settings: Settings, channel: str) -> str:
    """The checklist's name of a channel: mail, NOTIFY_URLS[i], ON_ALERT_COMMAND."""
    prefix = registry.module_for(channel).PREFIX
    if prefix == apprise_urls.PREFIX:
        return f"NOTIFY_URLS[{apprise_urls.index_of(settings, channel)}]"
    return {"mail": "mail", "command": "ON_ALERT_COMMAND"}[prefix]
