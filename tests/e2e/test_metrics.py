"""``METRICS_FILE``: the Prometheus textfile-collector file written after every run.

The file is read back with ``prometheus_client.parser`` (the official parser of
the text format node_exporter's textfile collector reads), and its numbers are
compared with ``status --json`` after each run.
"""

from __future__ import annotations

import json
import os
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

import helpers_e2e
from click.testing import CliRunner, Result
from emulator_fixtures import TestEmulator
from prometheus_client.parser import text_string_to_metric_families

from globus_auto.cli.group import cli

Metrics = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def invoke(config: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config), *args])


def read_metrics(path: Path) -> Metrics:
    """Every sample of the file: (name, sorted labels) -> value."""
    found: Metrics = {}
    for family in text_string_to_metric_families(path.read_text()):
        assert family.type == "gauge"
        assert family.documentation  # every metric has its HELP
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(metrics: Metrics, name: str, job: str, **labels: str) -> float | None:
    key = tuple(sorted({"job_name": job, **labels}.items()))
    return metrics.get((f"globus_auto_{name}", key))


def timestamp(text: str | None) -> float | None:
    return None if text is None else datetime.fromisoformat(text).timestamp()


def assert_matches_status(metrics: Metrics, config: Path) -> dict[str, Any]:
    """The metrics of every job say what ``status --json`` says; returns it."""
    result = invoke(config, "status", "--json")
    assert result.exit_code == 0, result.output
    doc: dict[str, Any] = json.loads(result.stdout)
    for job in doc["jobs"]:
        name = job["name"]
        assert value(metrics, "tracked_files", name) == job["tracked_files"]
        assert value(metrics, "waiting_files", name) == job["waiting_files"]
        assert value(metrics, "waiting_bytes", name) == job["waiting_bytes"]
        assert value(metrics, "tasks_in_flight", name) == len(job["tasks_in_flight"])
        assert value(metrics, "problem_files", name) == job["problem_files"]["count"]
        assert value(metrics, "blocked_files", name) == job["blocked_files"]["count"]
        finished = timestamp((job["last_run"] or {}).get("finished"))
        assert value(metrics, "last_run_timestamp_seconds", name) == finished
        delivered = timestamp(job["last_delivery"])
        assert value(metrics, "last_delivery_timestamp_seconds", name) == delivered
        open_kinds = {alert["kind"] for alert in job["alerts"]}
        alerts = {
            dict(labels)["kind"]: v
            for (metric, labels), v in metrics.items()
            if metric == "globus_auto_open_alerts" and dict(labels)["job_name"] == name
        }
        assert {kind for kind, v in alerts.items() if v == 1} == open_kinds
        assert "endpoint-not-ready" in alerts  # every kind is there, 0 or 1
    return doc


def test_the_file_matches_status_over_a_submit_a_delivery_and_an_alert(
    tmp_path: Path, globus_env: TestEmulator
) -> None:
    prom = tmp_path / "textfile" / "globus_auto.prom"
    prom.parent.mkdir()
    config = helpers_e2e.write_config(
        tmp_path / "config.py", globus_env, METRICS_FILE=str(prom)
    )
    source = helpers_e2e.src_data(globus_env)
    helpers_e2e.write_files(source, {"a.txt": b"hello", "sub/b.bin": b"x" * 1000})

    assert invoke(config, "run").exit_code == 0  # submits a task
    metrics = read_metrics(prom)
    doc = assert_matches_status(metrics, config)
    assert value(metrics, "tasks_in_flight", "default") == 1
    assert value(metrics, "waiting_files", "default") == 2
    assert value(metrics, "waiting_bytes", "default") == 1005
    assert value(metrics, "scanned_files", "default") == 2
    scan = value(metrics, "scan_duration_seconds", "default")
    assert scan is not None and scan >= 0
    assert value(metrics, "last_exit_code", "default") == 0
    first_success = value(metrics, "last_success_timestamp_seconds", "default")
    started = timestamp(doc["jobs"][0]["last_run"]["started"])
    assert first_success is not None and started is not None
    assert first_success >= started  # written at the end of that run

    assert globus_env.wait_idle(30)
    assert invoke(config, "run").exit_code == 0  # settles: delivered
    metrics = read_metrics(prom)
    doc = assert_matches_status(metrics, config)
    assert value(metrics, "waiting_files", "default") == 0
    assert value(metrics, "tasks_in_flight", "default") == 0
    assert doc["jobs"][0]["last_delivery"] is not None
    success = value(metrics, "last_success_timestamp_seconds", "default")
    assert success is not None and first_success is not None
    assert success >= first_success

    # The destination goes offline while a new file waits: exit 4 and an alert.
    globus_env.set_collection(globus_env.dst_id, connected=False)
    helpers_e2e.write_files(source, {"c.txt": b"new"})
    assert invoke(config, "run").exit_code == 4
    metrics = read_metrics(prom)
    doc = assert_matches_status(metrics, config)
    assert value(metrics, "last_exit_code", "default") == 4
    assert value(metrics, "open_alerts", "default", kind="endpoint-not-ready") == 1
    assert value(metrics, "waiting_files", "default") == 1
    # A failed run is not a success: the last success stays the earlier one.
    assert value(metrics, "last_success_timestamp_seconds", "default") == success


def two_jobs(tmp_path: Path, emulator: TestEmulator, prom: Path) -> Path:
    """A config of jobs ``a`` (an empty source) and ``b`` (a missing one)."""
    (helpers_e2e.src_data(emulator) / "a").mkdir()
    return helpers_e2e.write_jobs_config(
        tmp_path / "config.py", emulator, ("a", "b"), METRICS_FILE=str(prom)
    )


def test_a_job_run_alone_keeps_the_other_jobs_run_values(
    tmp_path: Path, emulator: TestEmulator
) -> None:
    prom = tmp_path / "globus_auto.prom"
    config = two_jobs(tmp_path, emulator, prom)

    assert invoke(config, "run", "--job", "b").exit_code == 1  # source missing
    assert value(read_metrics(prom), "last_exit_code", "b") == 1
    assert invoke(config, "run", "--job", "a").exit_code == 0  # nothing to do
    metrics = read_metrics(prom)
    assert value(metrics, "last_exit_code", "a") == 0
    assert value(metrics, "last_exit_code", "b") == 1  # carried over
    assert value(metrics, "last_success_timestamp_seconds", "b") is None
    assert value(metrics, "open_alerts", "b", kind="source-problem") == 1
    assert_matches_status(metrics, config)
    assert emulator.stats()["requests"] == {}  # nothing to send: no network call
    before = prom.read_bytes()
    assert invoke(config, "run", "--dry-run").exit_code == 1
    assert prom.read_bytes() == before  # a dry run records nothing, here neither


def test_the_file_is_world_readable_under_cron_s_umask_and_atomic(
    tmp_path: Path, emulator: TestEmulator
) -> None:
    prom = tmp_path / "globus_auto.prom"
    config = two_jobs(tmp_path, emulator, prom)
    done = subprocess.run(
        helpers_e2e.cli_command(config, ["run", "--job", "a"]),
        env=helpers_e2e.cli_env(emulator),
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=lambda: os.umask(0o077),  # the cron line's
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == done.stderr == ""  # a good run still prints nothing
    assert prom.stat().st_mode & 0o777 == 0o644  # node_exporter runs as itself
    assert sorted(p.name for p in tmp_path.iterdir() if "prom" in p.name) == [
        "globus_auto.prom"  # no temporary file left beside it
    ]


def test_a_metrics_file_that_cannot_be_written_never_fails_the_run(
    tmp_path: Path, emulator: TestEmulator
) -> None:
    prom = tmp_path / "no such folder" / "globus_auto.prom"
    config = two_jobs(tmp_path, emulator, prom)
    result = invoke(config, "run", "--job", "a")
    assert result.exit_code == 0, result.output
    log = (tmp_path / "state" / "globus-auto.log").read_text()
    assert "METRICS_FILE: could not write" in log
    assert str(prom) in log


def test_metrics_file_must_end_in_prom(tmp_path: Path, emulator: TestEmulator) -> None:
    config = helpers_e2e.write_config(
        tmp_path / "config.py", emulator, METRICS_FILE=str(tmp_path / "m.txt")
    )
    result = invoke(config, "run")
    assert result.exit_code == 2
    assert "METRICS_FILE" in result.output and "does not end in .prom" in (
        result.output
    )


def imported_modules(config: Path, emulator: TestEmulator) -> set[str]:
    """The modules a `run` of ``config`` imports (python -X importtime)."""
    return helpers_e2e.imported_by_run(config, helpers_e2e.cli_env(emulator))


def test_prometheus_client_is_imported_only_with_a_metrics_file(
    tmp_path: Path, emulator: TestEmulator
) -> None:
    prom = tmp_path / "globus_auto.prom"
    plain = helpers_e2e.write_config(tmp_path / "plain" / "config.py", emulator)
    assert "prometheus_client" not in imported_modules(plain, emulator)
    with_file = helpers_e2e.write_config(
        tmp_path / "metrics" / "config.py", emulator, METRICS_FILE=str(prom)
    )
    modules = imported_modules(with_file, emulator)
    assert "prometheus_client" in modules  # the check above can fail
    assert "globus_sdk" not in modules  # nothing to send: still no globus-sdk
    assert prom.is_file()


def test_a_job_gone_from_the_config_leaves_the_file(
    tmp_path: Path, emulator: TestEmulator
) -> None:
    prom = tmp_path / "globus_auto.prom"
    config = two_jobs(tmp_path, emulator, prom)
    assert invoke(config, "run", "--job", "b").exit_code == 1
    only_a = config.read_text().replace('"name": "b"', '"name": "c"')
    config.write_text(only_a.replace("'name': 'b'", "'name': 'c'"))
    assert invoke(config, "run", "--job", "a").exit_code == 0
    jobs = {dict(labels)["job_name"] for _, labels in read_metrics(prom)}
    assert jobs == {"a", "c"}  # b's carried values are gone with it
