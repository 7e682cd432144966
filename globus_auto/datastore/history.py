"""The datastore's history: open alerts and the record of runs.

Alert records are JSON kept by (job, kind), so the alert policy decides what
they mean; runs are kept per job, the newest 1000. Imports :mod:`.connection`
and :mod:`.records`.
"""

from __future__ import annotations

import json
from datetime import datetime

from globus_auto.datastore.connection import Connection
from globus_auto.datastore.records import RunRecord, ts_text


class History(Connection):
    """Open alerts and the run history."""

    def alert_rows(self, job: str | None = None) -> list[dict[str, object]]:
        """The open alert records (JSON objects, owned by the alerts module)."""
        if job is None:
            rows = self._conn.execute("SELECT record FROM alerts ORDER BY job, kind")
        else:
            rows = self._conn.execute(
                "SELECT record FROM alerts WHERE job = ? ORDER BY kind", (job,)
            )
        return [json.loads(r[0]) for r in rows]

    def put_alert(self, job: str, kind: str, record: dict[str, object] | None) -> None:
        """Store (or with ``None`` delete) the alert record of (job, kind)."""
        with self.transaction() as tx:
            if record is None:
                tx.execute("DELETE FROM alerts WHERE job = ? AND kind = ?", (job, kind))
            else:
                tx.execute(
                    "INSERT OR REPLACE INTO alerts (job, kind, record)"
                    " VALUES (?, ?, ?)",
                    (job, kind, json.dumps(record, sort_keys=True)),
                )

    # -- runs and small values ---------------------------------------------

    def record_run(self, run: RunRecord, keep: int = 1000) -> None:
        with self.transaction() as tx:
            tx.execute(
                "INSERT INTO runs (job, started, finished, outcome, detail, files_sent,"
                " bytes_sent) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    run.job,
                    ts_text(run.started),
                    ts_text(run.finished),
                    run.outcome,
                    run.detail,
                    run.files_sent,
                    run.bytes_sent,
                ),
            )
            tx.execute(
                "DELETE FROM runs WHERE job = ? AND id <= (SELECT max(id) FROM runs"
                " WHERE job = ?) - ?",
                (run.job, run.job, keep),
            )

    def last_runs(self, job: str, limit: int = 1) -> list[RunRecord]:
        rows = self._conn.execute(
            "SELECT job, started, finished, outcome, detail, files_sent, bytes_sent"
            " FROM runs WHERE job = ? ORDER BY id DESC LIMIT ?",
            (job, limit),
        )
        return [
            RunRecord(
                r[0],
                datetime.fromisoformat(r[1]),
                datetime.fromisoformat(r[2]),
                r[3],
                r[4],
                r[5],
                r[6],
            )
            for r in rows
        ]
