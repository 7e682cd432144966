"""``globus-auto status``: is my data safe, and if not, what do I do?

Everything shown comes from the datastore and the state folder, so the command is
fast and makes no network call; ``--refresh`` asks Globus about the tasks in
flight. The report is one JSON-ready dict, printed as text or as JSON.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import click

from globus_auto.cli.completion import job_option
from globus_auto.errors import EXIT_CODES_HELP, GlobusAutoError
from globus_auto.text import counted, human_bytes

if TYPE_CHECKING:
    from globus_auto.alerts.policy import AlertRecord
    from globus_auto.datastore.records import RunRecord, TaskRecord
    from globus_auto.datastore.store import Datastore
    from globus_auto.globus.gateway import Gateway
    from globus_auto.settings.model import Job, Settings

PROBLEM_FILES_SHOWN = 20


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(timezone.utc).isoformat()


def _shown_path(path: bytes) -> str:
    """A stored path as text; undecodable bytes appear as \\xNN escapes."""
    return path.decode("utf-8", "backslashreplace")


# --- collecting ----------------------------------------------------------------


def collect(
    settings: Settings,
    jobs: Sequence[Job],
    store: Datastore | None,
    gateway: Gateway | None = None,
) -> dict[str, Any]:
    """The whole report as plain JSON-ready values.

    ``store`` None means no datastore exists yet (nothing ever ran). With a
    ``gateway`` the tasks in flight are looked up at Globus.
    """
    from globus_auto.datastore.opening import datastore_path
    from globus_auto.logs import log_path

    return {
        "config": str(settings.config_path),
        "state_dir": str(settings.state_dir),
        "datastore": str(datastore_path(settings.state_dir)),
        "log": str(log_path(settings.state_dir)),
        "token": token_health(settings, store),
        "jobs": [job_status(settings, job, store, gateway) for job in jobs],
    }


def token_health(settings: Settings, store: Datastore | None) -> dict[str, Any]:
    """The login's health (from the tokens' files), plus what to do about it."""
    from globus_auto.globus.tokens import token_health as health_of

    health = health_of(settings, store)
    health["problem"] = _login_problem(settings, health)
    return health


def _login_problem(settings: Settings, health: dict[str, Any]) -> str | None:
    login = f"globus-auto --config {settings.config_path} login"
    if health.get("kind") == "none":
        return f"not logged in; run on a terminal: {login}"
    if health.get("last_error"):
        fix = "check CLIENT_ID and CLIENT_SECRET" if settings.client_secret else login
        return f"{health['last_error']} (at {health.get('last_error_at')}); {fix}"
    needing = health.get("collections_needing_login") or []
    if needing:
        return (
            f"collection {', '.join(needing)} is not covered by the stored login; "
            f"run on a terminal: {login}"
        )
    return None


def job_status(
    settings: Settings, job: Job, store: Datastore | None, gateway: Gateway | None
) -> dict[str, Any]:
    """One job's part of the report (long for its fields, one line each)."""
    status: dict[str, Any] = {
        "name": job.name,
        "source": {
            "collection": job.src_id,
            "path": job.src_dir,
            "local_dir": str(job.src_local_dir),
        },
        "destination": {"collection": job.dst_id, "path": job.dst_dir},
        "tracked_files": 0,
        "waiting_files": 0,
        "waiting_bytes": 0,
        "tasks_in_flight": [],
        "max_tasks_in_flight": job.max_tasks_in_flight,
        "last_run": None,
        "last_delivery": None,
        "alerts": [],
        "problem_files": {"count": 0, "files": []},
        "blocked_files": {"count": 0, "files": []},
        "changing_files": {"count": 0, "files": []},
    }
    from globus_auto.engine.standing import job_standing

    standing = job_standing(store, job)  # the metrics file reads the same
    job_id = standing.job_id
    status["running"] = _running(settings, job)
    status["last_run"] = _last_run(standing.last_run)
    status["alerts"] = _alerts(standing.alerts)
    if store is not None and job_id is not None:
        status.update(
            tracked_files=standing.tracked_files,
            waiting_files=standing.waiting_files,
            waiting_bytes=standing.waiting_bytes,
            tasks_in_flight=[_task(t, gateway) for t in standing.tasks_in_flight],
            last_delivery=_iso(standing.last_delivery),
            problem_files={
                "count": standing.problem_files,
                "files": [
                    {"path": _shown_path(path), "reason": reason}
                    for path, reason in store.problems(job_id, PROBLEM_FILES_SHOWN)
                ],
            },
            blocked_files={
                "count": standing.blocked_files,
                "files": [
                    {"path": _shown_path(path), "reason": reason}
                    for path, reason in sorted(
                        store.blocked_files(job_id, PROBLEM_FILES_SHOWN)
                    )
                ],
            },
            changing_files={
                "count": standing.changing_files,
                "files": [
                    {"path": _shown_path(path), "since": _iso(since)}
                    for path, since in store.changing_files(
                        job_id, limit=PROBLEM_FILES_SHOWN
                    )
                ],
            },
        )
    status["state"] = _verdict(status, never_ran=job_id is None)
    return status


def _running(settings: Settings, job: Job) -> dict[str, Any] | None:
    """The run of ``job`` in progress now (its process and start), or None."""
    from globus_auto.lock import holder

    held = holder(settings.state_dir, job.name)
    if held is None:
        return None
    return {"pid": held.pid, "since": _iso(held.since)}


def _last_run(run: RunRecord | None) -> dict[str, Any] | None:
    if run is None:
        return None
    return {
        "started": _iso(run.started),
        "finished": _iso(run.finished),
        "outcome": run.outcome,
        "detail": run.detail,
        "files_sent": run.files_sent,
        "bytes_sent": run.bytes_sent,
    }


def _alerts(records: Sequence[AlertRecord]) -> list[dict[str, Any]]:
    """The job's open alerts (those not yet found fixed), as JSON-ready values."""
    return [
        {
            "kind": record.kind.value,
            "summary": record.summary,
            "what_happened": record.problem.what_happened,
            "what_to_do": record.problem.what_to_do,
            "since": record.first_seen.isoformat(),
            "last_mailed": None
            if record.last_sent is None
            else record.last_sent.isoformat(),
        }
        for record in records
    ]


def _task(task: TaskRecord, gateway: Gateway | None) -> dict[str, Any]:
    """A task in flight, as last seen by a run or, with a gateway, by Globus now."""
    view: dict[str, Any] = {
        "task_id": task.task_id,
        "submission_id": task.submission_id,
        "submitted": _iso(task.submitted),
        "files": task.files,
        "bytes": task.bytes,
        "whole_directory": task.recursive,
        "status": task.globus_status or ("SUBMITTED" if task.task_id else "PREPARING"),
        "progress": task.detail,
        "source": "datastore",
    }
    if gateway is None or task.task_id is None:
        return view
    try:
        state = gateway.task(task.task_id)
    except GlobusAutoError as exc:
        view["refresh_error"] = str(exc)
        return view
    view.update(
        status=state.status,
        progress=state.describe(),
        files_transferred=state.files_transferred,
        bytes_transferred=state.bytes_transferred,
        source="globus",
    )
    if state.finished:
        view["note"] = "finished at Globus; the next run records it"
    return view


def _verdict(status: dict[str, Any], never_ran: bool) -> str:
    """One word for the job: ok, waiting, attention or never run."""
    if (
        status["alerts"]
        or status["problem_files"]["count"]
        or status["blocked_files"]["count"]
    ):
        return "attention"
    if never_ran:
        return "never run"
    if status["tasks_in_flight"] or status["waiting_files"]:
        return "waiting"
    return "ok"


# --- showing ---------------------------------------------------------------------


def _when(text: str | None, now: datetime) -> str:
    """``2024-05-01 12:00 UTC (3 h ago)`` from an ISO timestamp."""
    if text is None:
        return "never"
    moment = datetime.fromisoformat(text).astimezone(timezone.utc)
    seconds = max(0, int((now - moment).total_seconds()))
    if seconds < 120:
        ago = f"{seconds} s ago"
    elif seconds < 7200:
        ago = f"{seconds // 60} min ago"
    elif seconds < 172800:
        ago = f"{seconds // 3600} h ago"
    else:
        ago = f"{seconds // 86400} days ago"
    return f"{moment:%Y-%m-%d %H:%M} UTC ({ago})"


def _files(count: int, size: int) -> str:
    return f"{counted(count, 'file')} ({human_bytes(size)})"


def render_text(report: dict[str, Any], now: datetime) -> list[str]:
    """The report as lines for a person."""
    lines: list[str] = []
    for job in report["jobs"]:
        lines += _job_lines(job, report["config"], now)
        lines.append("")
    lines += _token_lines(report["token"])
    lines += [
        f"config      {report['config']}",
        f"state       {report['state_dir']}",
        f"datastore   {report['datastore']}",
        f"log         {report['log']}",
    ]
    return lines


def _job_lines(job: dict[str, Any], config: str, now: datetime) -> list[str]:
    src, dst = job["source"], job["destination"]
    lines = [
        f"job {job['name']}: {job['state']}",
        f"  from        {src['path']} on {src['collection']}"
        f" (here: {src['local_dir']})",
        f"  to          {dst['path']} on {dst['collection']}",
        f"  tracked     {counted(job['tracked_files'], 'file')}",
        f"  waiting     {_files(job['waiting_files'], job['waiting_bytes'])}"
        f" not yet delivered{_changing_note(job['changing_files'])}",
    ]
    lines += _in_flight_lines(job)
    if job.get("running"):
        running = job["running"]
        lines.append(
            f"  running     since {_when(running['since'], now)} "
            f"(process {running['pid'] or '?'})"
        )
    lines += _last_run_lines(job["last_run"], now)
    lines.append(f"  delivered   {_when(job['last_delivery'], now)} (last success)")
    for alert in job["alerts"]:
        lines.append(
            f"  ALERT       {alert['summary']} (since {_when(alert['since'], now)})"
        )
        lines.append(f"              {alert['what_happened']}")
        lines.append(f"              to fix: {alert['what_to_do']}")
    lines += _problem_lines(job["problem_files"])
    lines += _blocked_lines(job["blocked_files"])
    lines += _changing_lines(job["changing_files"], now)
    if job["state"] == "never run":
        lines.append(
            f"  next        see what would be sent: globus-auto --config {config} "
            f"run --dry-run --job {job['name']}"
        )
    return lines


def _in_flight_lines(job: dict[str, Any]) -> list[str]:
    """Lines for each task in flight (what it carries) and the job's limit."""
    tasks = job["tasks_in_flight"]
    lines = []
    for task in tasks:
        where = "Globus now" if task["source"] == "globus" else "as of the last run"
        carries = (
            "the whole directory"
            if task["whole_directory"]
            else _files(task["files"], task["bytes"])
        )
        lines.append(
            f"  in flight   task {task['task_id'] or '(being submitted)'}: "
            f"{task['progress'] or task['status']} [{where}]"
        )
        lines.append(f"              carries {carries}")
        if task.get("note"):
            lines.append(f"              {task['note']}")
        if task.get("refresh_error"):
            lines.append(f"              could not ask Globus: {task['refresh_error']}")
    if len(tasks) > 1 or (tasks and len(tasks) >= job["max_tasks_in_flight"]):
        lines.append(
            f"              {counted(len(tasks), 'task')} in flight, at most "
            f"{job['max_tasks_in_flight']} at once (MAX_TASKS_IN_FLIGHT)"
        )
    return lines


def _last_run_lines(run: dict[str, Any] | None, now: datetime) -> list[str]:
    if run is None:
        return ["  last run    never"]
    line = f"  last run    {_when(run['finished'], now)}: {run['outcome']}"
    lines = [line]
    if run["detail"] and run["detail"] != run["outcome"]:
        lines.append(f"              {run['detail']}")
    return lines


def _problem_lines(problems: dict[str, Any]) -> list[str]:
    if not problems["count"]:
        return []
    count = counted(problems["count"], "file")
    lines = [f"  not sent    {count} could not be read or sent:"]
    lines += [f"              {p['path']}: {p['reason']}" for p in problems["files"]]
    hidden = problems["count"] - len(problems["files"])
    if hidden > 0:
        lines.append(f"              ... and {hidden:,} more (see --json)")
    return lines


def _blocked_lines(blocked: dict[str, Any]) -> list[str]:
    """The files held back by a folder or file of the other type at the
    destination, each with why (the path to fix)."""
    if not blocked["count"]:
        return []
    count = counted(blocked["count"], "file")
    verb = "waits" if blocked["count"] == 1 else "wait"
    lines = [f"  blocked     {count} {verb} for a path to be fixed at the destination:"]
    lines += [f"              {p['path']}: {p['reason']}" for p in blocked["files"]]
    hidden = blocked["count"] - len(blocked["files"])
    if hidden > 0:
        lines.append(f"              ... and {hidden:,} more (see --json)")
    return lines


def _changing_note(changing: dict[str, Any]) -> str:
    return f" ({changing['count']:,} changing)" if changing["count"] else ""


def _changing_lines(changing: dict[str, Any], now: datetime) -> list[str]:
    """The files changed at every scan lately: not sent until they settle."""
    if not changing["count"]:
        return []
    count = counted(changing["count"], "file")
    lines = [f"  changing    {count} changed at every run lately, sent once settled:"]
    lines += [
        f"              {p['path']} (since {_when(p['since'], now)})"
        for p in changing["files"]
    ]
    hidden = changing["count"] - len(changing["files"])
    if hidden > 0:
        lines.append(f"              ... and {hidden:,} more (see --json)")
    return lines


def _token_lines(token: dict[str, Any]) -> list[str]:
    text = f"login       {token['kind']}"
    if token.get("last_used"):
        text += f"; tokens last used {str(token['last_used'])[:16].replace('T', ' ')}"
    if token.get("keepalive_due"):
        text += " (the next run renews them)"
    lines = [text, f"tokens      {token['tokens_file']}"]
    if token.get("problem"):
        lines.append(f"  LOGIN     {token['problem']}")
    return lines


# --- the command -------------------------------------------------------------------


@click.command(
    "status",
    epilog="Examples:\n\n  globus-auto status\n\n"
    "  globus-auto status --job raw --refresh --json\n\n" + EXIT_CODES_HELP,
)
@job_option()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.option(
    "--refresh", is_flag=True, help="Ask Globus about the tasks in flight (online)."
)
@click.pass_context
def status_command(
    ctx: click.Context, job_names: Sequence[str], as_json: bool, refresh: bool
) -> None:
    """Show, per job, what is delivered, waiting, in flight and wrong.

    Reads only the local datastore (no network) unless --refresh is given.
    """
    from globus_auto.cli.context import CliState

    state = ctx.find_object(CliState)
    assert state is not None
    settings = state.settings()
    jobs = [settings.job(n) for n in job_names] if job_names else list(settings.jobs)
    report = _report(settings, jobs, refresh)
    if as_json:
        click.echo(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        for line in render_text(report, datetime.now(timezone.utc)):
            click.echo(line)


def _report(settings: Settings, jobs: Sequence[Job], refresh: bool) -> dict[str, Any]:
    from globus_auto.datastore.opening import (
        CorruptDatastore,
        datastore_path,
        open_datastore,
    )
    from globus_auto.errors import DatastoreError

    if not datastore_path(settings.state_dir).exists():
        return collect(settings, jobs, None)
    try:
        store = open_datastore(settings.state_dir, datetime.now(timezone.utc))
    except CorruptDatastore as exc:
        raise DatastoreError(
            f"{exc}; the next run moves it aside and starts afresh (a checksum "
            "sync that skips what was delivered): run globus-auto run"
        ) from exc
    try:
        gateway = _gateway(settings, store) if refresh else None
        return collect(settings, jobs, store, gateway)
    finally:
        store.close()


def _gateway(settings: Settings, store: Datastore) -> Gateway | None:
    """A gateway only when some task is in flight (none: no network call)."""
    in_flight = any(
        store.open_tasks(job_id)
        for job_id in (store.existing_job_id(j.identity) for j in settings.jobs)
        if job_id is not None
    )
    if not in_flight:
        return None
    from globus_auto.globus.login import connect

    return connect(settings, prompt=None)


__all__ = ["collect", "render_text", "status_command", "token_health"]
