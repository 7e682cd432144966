"""The pure alert decisions: when to mail, what the mail says."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from globus_auto.alerts.message import compose
from globus_auto.alerts.policy import (
    AlertRecord,
    Outgoing,
    plan_alerts,
    record_after_send,
)
from globus_auto.problems import AlertKey, Kind, Problem
from globus_auto.text import header_safe, human_bytes

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)
DAY = timedelta(hours=24)


def problem(
    job: str = "raw", kind: Kind = Kind.ENDPOINT_NOT_READY, **kw: int
) -> Problem:
    return Problem(
        job=job,
        kind=kind,
        summary=f"{kind.value} for {job}",
        what_happened="The destination collection is paused.",
        what_to_do="Run: globus-auto check",
        next_attempt="The next cron run will try again.",
        **kw,
    )


def one_run(
    records: dict[AlertKey, AlertRecord],
    problems: list[Problem],
    cleared: set[AlertKey],
    now: datetime,
    send_ok: bool = True,
) -> list[Outgoing]:
    """What the runner does: plan, 'send', persist. Returns the mails attempted."""
    plan = plan_alerts(list(records.values()), problems, cleared, now, DAY)
    for outgoing in plan:
        ok = send_ok if outgoing.message_kind is not None else True
        record = record_after_send(outgoing, ok, now)
        if record is None:
            del records[outgoing.key]
        else:
            records[outgoing.key] = record
    return [outgoing for outgoing in plan if outgoing.message_kind is not None]


def kinds(plan: list[Outgoing]) -> list[str | None]:
    return [outgoing.message_kind for outgoing in plan]


def test_three_runs_one_mail_then_reminder_then_resolved() -> None:
    records: dict[AlertKey, AlertRecord] = {}
    key = ("raw", Kind.ENDPOINT_NOT_READY)
    assert kinds(one_run(records, [problem()], set(), T0)) == ["new"]
    assert one_run(records, [problem()], set(), T0 + timedelta(minutes=5)) == []
    assert one_run(records, [problem()], set(), T0 + timedelta(minutes=10)) == []
    assert kinds(one_run(records, [problem()], set(), T0 + DAY)) == ["reminder"]
    assert one_run(records, [problem()], set(), T0 + DAY + timedelta(hours=1)) == []
    assert one_run(records, [], set(), T0 + DAY * 3) == []  # nothing known: left alone
    assert kinds(one_run(records, [], {key}, T0 + DAY * 3)) == ["resolved"]
    assert records == {}
    assert one_run(records, [], {key}, T0 + DAY * 4) == []


def test_failed_new_mail_is_sent_by_the_next_run() -> None:
    records: dict[AlertKey, AlertRecord] = {}
    assert kinds(one_run(records, [problem()], set(), T0, send_ok=False)) == ["new"]
    [record] = records.values()
    assert record.last_sent is None and record.first_seen == T0
    later = T0 + timedelta(minutes=5)
    assert kinds(one_run(records, [problem()], set(), later)) == ["new"]
    [record] = records.values()
    assert record.last_sent == later and record.first_seen == T0


def test_failed_resolved_mail_is_retried_even_when_nothing_is_known() -> None:
    records: dict[AlertKey, AlertRecord] = {}
    key = ("raw", Kind.ENDPOINT_NOT_READY)
    one_run(records, [problem()], set(), T0)
    one_run(records, [], {key}, T0 + timedelta(hours=1), send_ok=False)
    assert records[key].resolved_at == T0 + timedelta(hours=1)
    assert kinds(one_run(records, [], set(), T0 + timedelta(hours=2))) == ["resolved"]
    assert records == {}


def test_problem_back_before_its_resolved_mail_went_out_is_still_open() -> None:
    records: dict[AlertKey, AlertRecord] = {}
    key = ("raw", Kind.ENDPOINT_NOT_READY)
    one_run(records, [problem()], set(), T0)
    one_run(records, [], {key}, T0 + timedelta(hours=1), send_ok=False)
    plan = plan_alerts(list(records.values()), [problem()], set(), T0 + DAY / 2, DAY)
    assert kinds(plan) == [None]  # no mail, but the record is reopened
    one_run(records, [problem()], set(), T0 + DAY / 2)
    assert records[key].resolved_at is None
    assert one_run(records, [], set(), T0 + DAY / 2) == []  # no stray "resolved"
    assert kinds(one_run(records, [problem()], set(), T0 + DAY)) == ["reminder"]


def test_reported_wins_over_cleared_and_duplicates_count_once() -> None:
    key = ("raw", Kind.ENDPOINT_NOT_READY)
    plan = plan_alerts([], [problem(), problem()], {key}, T0, DAY)
    assert kinds(plan) == ["new"]


def test_jobs_and_kinds_are_independent() -> None:
    records: dict[AlertKey, AlertRecord] = {}
    found = [problem("a"), problem("b"), problem("a", Kind.TASK_FAILED)]
    assert kinds(one_run(records, found, set(), T0)) == ["new", "new", "new"]
    sent = one_run(records, [], {("a", Kind.TASK_FAILED)}, T0 + timedelta(hours=1))
    assert [(o.key, o.message_kind) for o in sent] == [
        (("a", Kind.TASK_FAILED), "resolved")
    ]
    assert set(records) == {
        ("a", Kind.ENDPOINT_NOT_READY),
        ("b", Kind.ENDPOINT_NOT_READY),
    }


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        plan_alerts([], [problem()], set(), datetime(2025, 1, 1), DAY)


def test_problem_round_trips_through_a_dict() -> None:
    original = problem(pending_files=2, pending_bytes=10)
    assert Problem.from_dict(original.to_dict()) == original
    assert original.to_dict()["kind"] == "endpoint-not-ready"


# --- composition ------------------------------------------------------------------


def compose_for(outgoing: Outgoing, now: datetime = T0) -> tuple[str, str]:
    message = compose(outgoing, "g@lab.example", ["ops@lab.example"], now, "host1")
    assert message["Date"] and message["Message-ID"]
    return str(message["Subject"]), message.get_content()


def test_new_mail_subject_and_body() -> None:
    [new] = plan_alerts(
        [], [problem(pending_files=1, pending_bytes=3 << 30)], (), T0, DAY
    )
    subject, body = compose_for(new)
    assert subject == "[globus-auto] raw: endpoint-not-ready for raw"
    assert "1 file (3.0 GiB) waiting to be sent" in body
    for expected in ("paused", "Run: globus-auto check", "next cron run", "host1"):
        assert expected in body


def test_reminder_and_resolved_subjects() -> None:
    records: dict[AlertKey, AlertRecord] = {}
    one_run(records, [problem()], set(), T0)
    [reminder] = plan_alerts(list(records.values()), [problem()], (), T0 + DAY, DAY)
    subject, body = compose_for(reminder, T0 + DAY)
    assert subject.endswith("(still failing since 2025-03-01 12:00 UTC)")
    assert "lasted since 2025-03-01 12:00 UTC" in body
    key = ("raw", Kind.ENDPOINT_NOT_READY)
    [resolved] = plan_alerts(list(records.values()), [], {key}, T0 + DAY, DAY)
    subject, body = compose_for(resolved, T0 + DAY)
    assert subject == "[globus-auto] raw: resolved: endpoint-not-ready for raw"
    assert "found fine again 2025-03-02 12:00 UTC" in body


def test_compose_refuses_a_decision_without_mail() -> None:
    record = AlertRecord(problem(), T0, T0, resolved_at=T0)
    with pytest.raises(ValueError, match="no mail"):
        compose(Outgoing(record, None, problem()), "g@x", ["o@x"], T0, "h")


@given(st.text())
def test_header_safe_never_keeps_a_line_break(text: str) -> None:
    safe = header_safe(text)
    assert "\r" not in safe and "\n" not in safe
    assert all(ord(c) >= 0x20 for c in safe)


@given(st.text(min_size=1, max_size=300))
def test_any_job_name_gives_a_single_line_subject(job: str) -> None:
    [new] = plan_alerts([], [problem(job=job)], (), T0, DAY)
    message = compose(new, "g@lab.example", ["ops@lab.example"], T0, job)
    subject = str(message["Subject"])
    assert "\n" not in subject and "\r" not in subject
    assert subject.startswith("[globus-auto] ")
    message.as_bytes()  # serialises without complaint


@pytest.mark.parametrize(
    ("count", "text"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (5 << 40, "5.0 TiB"),
    ],
)
def test_human_bytes(count: int, text: str) -> None:
    assert human_bytes(count) == text


# --- the property -----------------------------------------------------------------

KEYS: list[AlertKey] = [
    ("a", Kind.ENDPOINT_NOT_READY),
    ("a", Kind.TASK_FAILED),
    ("b", Kind.DATASTORE),
]


@st.composite
def runs(draw: st.DrawFn) -> list[tuple[timedelta, set[AlertKey], set[AlertKey], bool]]:
    """Runs: (time since the previous run, reported, cleared, whether sends work)."""
    result = []
    for _ in range(draw(st.integers(1, 40))):
        gap = timedelta(minutes=draw(st.integers(0, 36 * 60)))
        reported = draw(st.sets(st.sampled_from(KEYS)))
        cleared = draw(st.sets(st.sampled_from(KEYS))) - reported
        result.append((gap, reported, cleared, draw(st.booleans())))
    return result


@settings(max_examples=300, deadline=None)
@given(runs())
def test_at_most_one_mail_per_window_and_every_alert_resolves(
    schedule: list[tuple[timedelta, set[AlertKey], set[AlertKey], bool]],
) -> None:
    records: dict[AlertKey, AlertRecord] = {}
    now = T0
    last_problem_mail: dict[AlertKey, datetime] = {}
    announced: set[AlertKey] = set()  # a problem mail went out, no resolved yet
    for gap, reported, cleared, send_ok in schedule:
        now += gap
        found = [problem(job, kind) for job, kind in reported]
        mails = one_run(records, found, cleared, now, send_ok)
        assert len({mail.key for mail in mails}) == len(mails)  # one per key per run
        for mail in mails:
            if not send_ok:
                continue
            if mail.message_kind == "resolved":
                announced.discard(mail.key)
                last_problem_mail.pop(mail.key, None)
            else:
                previous = last_problem_mail.get(mail.key)
                assert previous is None or now - previous >= DAY
                last_problem_mail[mail.key] = now
                announced.add(mail.key)
        for key in reported:  # nothing reported is ever forgotten
            assert records[key].resolved_at is None
            assert (records[key].last_sent is not None) == (key in announced)
    # Everything clears and mail works again: one run sends every "resolved".
    before = set(records)
    mails = one_run(records, [], set(KEYS), now + timedelta(minutes=5))
    assert {mail.key for mail in mails} == before
    assert all(mail.message_kind == "resolved" for mail in mails)
    assert announced <= before
    assert records == {}
