"""The group's options after a command's name: which words move, which stay."""

from __future__ import annotations

import click
import pytest

from globus_auto.cli.group import cli


def moved(*args: str) -> list[str]:
    with click.Context(cli) as ctx:
        return cli._global_options_first(ctx, list(args))  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (["run", "-v", "--config", "X"], ["-v", "--config", "X", "run"]),
        (
            ["run", "--config=X", "-vv", "--dry-run"],
            ["--config=X", "-vv", "run", "--dry-run"],
        ),
        (["--config", "X", "run", "--verbose"], ["--config", "X", "--verbose", "run"]),
        (["--config", "run", "status", "-v"], ["--config", "run", "-v", "status"]),
        # an option's value stays the option's, even when it looks like -v
        (
            ["run", "--job", "-v", "--timeout", "--config"],
            ["run", "--job", "-v", "--timeout", "--config"],
        ),
        (["status", "--job=-v", "-v"], ["-v", "status", "--job=-v"]),
        # nothing after -- moves
        (["run", "--", "-v"], ["run", "--", "-v"]),
        # an unknown command, or none, is left to click to report
        (["nosuch", "-v"], ["nosuch", "-v"]),
        (["-v"], ["-v"]),
    ],
)
def test_global_options_move_before_the_command(
    given: list[str], expected: list[str]
) -> None:
    assert moved(*given) == expected
