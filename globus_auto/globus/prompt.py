"""How a login reaches a person: the command line hands one of these down.

Below the command line nothing prompts or prints: a login that needs a person
is given a :class:`LoginPrompt` by the command that runs it (``globus-auto
login``, or a run started on a terminal), and none under cron, where a needed
login is an error instead. Imports nothing.
"""

from __future__ import annotations

from typing import Protocol


class LoginPrompt(Protocol):
    """A person at a terminal, as a login sees them."""

    def show_url(self, url: str) -> None:
        """Show the address to open in a browser to log in."""

    def read_code(self) -> str:
        """The authorization code the person pasted; "" if none."""

    def say(self, text: str) -> None:
        """Tell the person something about the login."""
