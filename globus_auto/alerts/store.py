"""Where alert records are kept: the datastore, or a fallback file beside it.

When the datastore itself cannot be opened, the alert records live for a while
in a small JSON file beside it (``alerts-pending.json``), so that the problem is
still mailed once, not every run; the next run that opens the datastore moves
them back in.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from globus_auto.alerts.policy import AlertRecord
from globus_auto.datastore.opening import datastore_path
from globus_auto.datastore.store import Datastore
from globus_auto.files import read_json, write_private_json
from globus_auto.problems import Problem
from globus_auto.settings.model import Settings

log = logging.getLogger(__name__)


FALLBACK_FILE = "alerts-pending.json"


class AlertStore(Protocol):
    """Where alert records are kept: the datastore, or the fallback file."""

    def alert_rows(self, job: str | None = None) -> list[dict[str, object]]: ...

    def put_alert(
        self, job: str, kind: str, record: dict[str, object] | None
    ) -> None: ...


class FallbackAlertStore:
    """Alert records in a 0600 JSON file, for when the datastore is unusable."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / FALLBACK_FILE

    def alert_rows(self, job: str | None = None) -> list[dict[str, object]]:
        rows = list(self._load().values())
        return [row for row in rows if job is None or _job_of(row) == job]

    def put_alert(self, job: str, kind: str, record: dict[str, object] | None) -> None:
        rows = self._load()
        key = json.dumps([job, kind])
        if record is None:
            rows.pop(key, None)
        else:
            rows[key] = record
        self._save(rows)

    def delete(self) -> None:
        self.path.unlink(missing_ok=True)

    def _load(self) -> dict[str, dict[str, object]]:
        loaded = read_json(self.path)
        if loaded is None and self.path.exists():
            log.warning("ignoring the unreadable %s", self.path)
        return loaded if isinstance(loaded, dict) else {}

    def _save(self, rows: dict[str, dict[str, object]]) -> None:
        if rows:
            write_private_json(self.path, rows)
        else:
            self.delete()


def _job_of(row: dict[str, object]) -> object:
    problem = row.get("problem")
    return problem.get("job") if isinstance(problem, dict) else None


def record_to_dict(record: AlertRecord) -> dict[str, Any]:
    """Plain JSON-ready values; ``last_sent`` is kept for earlier versions."""
    last_sent = record.last_sent
    return {
        "problem": record.problem.to_dict(),
        "first_seen": record.first_seen.isoformat(),
        "sent": {channel: when.isoformat() for channel, when in record.sent.items()},
        "last_sent": last_sent.isoformat() if last_sent else None,
        "resolved_at": record.resolved_at.isoformat() if record.resolved_at else None,
        "failures": record.failures,
        "last_seen": record.last_seen.isoformat() if record.last_seen else None,
    }


def _when(text: Any) -> datetime | None:
    return None if text is None else datetime.fromisoformat(str(text))


def record_from_dict(values: dict[str, Any]) -> AlertRecord:
    """The inverse of :func:`record_to_dict`, reading earlier versions' records.

    Why the "mail" fallback: before there were several channels, ``last_sent``
    was when the alert was mailed.
    """
    first_seen = _when(values["first_seen"])
    assert first_seen is not None
    sent_values = values.get("sent")
    if isinstance(sent_values, dict):
        sent = {str(c): _when(t) for c, t in sent_values.items()}
    else:
        sent = {"mail": _when(values.get("last_sent"))}
    return AlertRecord(
        problem=Problem.from_dict(dict(values["problem"])),
        first_seen=first_seen,
        sent={c: t for c, t in sent.items() if t is not None},
        resolved_at=_when(values.get("resolved_at")),
        failures=int(values.get("failures") or 0),
        last_seen=_when(values.get("last_seen")),
    )


def open_alerts(store: AlertStore, job: str | None = None) -> list[AlertRecord]:
    """The stored records; one that cannot be read is logged and skipped."""
    records = []
    for row in store.alert_rows(job):
        try:
            records.append(record_from_dict(dict(row)))
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("skipping an unreadable alert record %r: %s", row, exc)
    return records


def read_only_datastore(settings: Settings) -> Datastore | None:
    """The datastore opened read-only, or None if even that fails."""
    path = datastore_path(settings.state_dir).absolute()
    if not path.is_file():
        return None
    try:
        conn = sqlite3.connect(
            f"{path.as_uri()}?mode=ro", uri=True, check_same_thread=False
        )
    except sqlite3.Error:
        return None
    return Datastore(path, conn)
