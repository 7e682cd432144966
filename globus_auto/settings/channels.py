"""Checks of the alert channels' settings: the SMTP server and the heartbeat.

Part of the validation of :mod:`.validate`, kept apart so each module stays
small. Imports :mod:`.model` and :mod:`.values`.
"""

from __future__ import annotations

import re
from typing import cast

from globus_auto.settings.model import (
    DEFAULT_PASSWORD_ENV,
    SECURITY_VALUES,
    Security,
    SmtpSettings,
)
from globus_auto.settings.values import MISSING, ValueChecker, suggest
from globus_auto.text import redacted_url

ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def describe_type(value: object) -> str:
    """``a list``, ``an int``: a wrong value named by its type only."""
    name = type(value).__name__
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


class ChannelChecker(ValueChecker):
    """The checks of EMAIL_* and HEARTBEAT_URL."""

    def smtp(self) -> SmtpSettings:
        host = self.get("EMAIL_HOST")
        host = "localhost" if host is MISSING or host is None else host
        port = self.get("EMAIL_PORT")
        if port is MISSING or port is None:
            port = None
        elif (
            not isinstance(port, int)
            or isinstance(port, bool)
            or not (0 < port < 65536)
        ):
            self.problem("EMAIL_PORT", f"must be a port number 1-65535, not {port!r}")
            port = None
        username = self.get("EMAIL_USERNAME")
        password_env = self.get("EMAIL_PASSWORD_ENV")
        if password_env is MISSING or password_env is None:
            password_env = DEFAULT_PASSWORD_ENV
        elif not isinstance(password_env, str) or not ENV_NAME_RE.fullmatch(
            password_env
        ):
            self.problem(
                "EMAIL_PASSWORD_ENV",
                f"{password_env!r} is not an environment variable name",
            )
            password_env = DEFAULT_PASSWORD_ENV
        return SmtpSettings(
            host=self.string("EMAIL_HOST", host) or "localhost",
            port=port,
            security=self.security(),
            username=None
            if username is MISSING or username is None
            else self.string("EMAIL_USERNAME", username),
            password_file=self.local_dir(
                "EMAIL_PASSWORD_FILE", self.get("EMAIL_PASSWORD_FILE")
            ),
            password_env=password_env,
        )

    def security(self) -> Security:
        value = self.get("EMAIL_SECURITY")
        if value is MISSING or value is None or value is False:
            return "none"
        if isinstance(value, str) and value.strip().lower() in SECURITY_VALUES:
            return cast(Security, value.strip().lower())
        hint = (
            suggest(str(value).lower(), SECURITY_VALUES)
            if isinstance(value, str)
            else ""
        )
        self.problem(
            "EMAIL_SECURITY",
            f"{value!r} is not one of 'starttls', 'ssl', 'none'{hint}",
        )
        return "none"

    def heartbeat_url(self) -> str | None:
        """HEARTBEAT_URL, an http(s) URL; a wrong one is named by its scheme
        and host only (:func:`redacted_url`): its path is the check's token."""
        value = self.get("HEARTBEAT_URL")
        if value is MISSING or value is None:
            return None
        if (
            isinstance(value, str)
            and value.startswith(("http://", "https://"))
            and not any(ch.isspace() for ch in value)
        ):
            return value.rstrip("/")
        shown = redacted_url(value) if isinstance(value, str) else describe_type(value)
        self.problem(
            "HEARTBEAT_URL",
            f"{shown} is not an http:// or https:// URL without spaces (the rest "
            "is not shown: it may hold the check's token); write it as, e.g., "
            "https://hc-ping.com/<uuid>",
        )
        return None
