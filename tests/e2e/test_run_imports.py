"""What a run with nothing to send imports: not globus-sdk, and none of the
alert channels' libraries (issue 13: a no-change run should cost what listing
the tree costs, and importing these was 15 ms of each run's start)."""

from __future__ import annotations

from pathlib import Path

import helpers_e2e
from click.testing import CliRunner
from emulator_fixtures import TestEmulator

from globus_auto.cli.group import cli

# Imported only to talk to Globus, to send an alert or to ping a heartbeat.
NOT_IMPORTED = (
    "globus_sdk",
    "smtplib",
    "ssl",
    "email.message",
    "urllib.request",
    "http.client",
    "subprocess",
    "globus_auto.alerts.channels.registry",
    "globus_auto.alerts.heartbeat",
    "globus_auto.engine.tasks",
)


def test_a_run_with_nothing_to_send_imports_no_channel_nor_network_library(
    tmp_path: Path, globus_env: TestEmulator
) -> None:
    config = helpers_e2e.write_config(tmp_path / "config.py", globus_env)
    (globus_env.src_root / "data" / "a.txt").write_text("a")
    first = CliRunner().invoke(cli, ["--config", str(config), "run", "--wait"])
    assert first.exit_code == 0, first.output
    modules = helpers_e2e.imported_by_run(config)
    assert "globus_auto.engine.scan" in modules  # it did scan
    assert sorted(set(NOT_IMPORTED) & modules) == []
