"""The pure alert decisions: when to alert, over which channels, what it says."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from globus_auto.alerts.message import compose
from globus_auto.alerts.policy import (
    GRACE_KINDS,
    GRACE_VALUES,
    AlertRecord,
    Decision,
    Outgoing,
    grace_for,
    plan_alerts,
    record_after_send,
)
from globus_auto.alerts.store import record_from_dict, record_to_dict
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


MAIL = ("mail",)
BOTH = ("mail", "notify:1")


def plan(
    records: dict[AlertKey, AlertRecord],
    problems: list[Problem],
    cleared: set[AlertKey] | tuple[()],
    now: datetime,
    channels: tuple[str, ...] = MAIL,
    after_failures: int = 1,
) -> list[Decision]:
    return plan_alerts(
        list(records.values()),
        problems,
        cleared,
        now,
        DAY,
        channels=lambda job: channels,
        after_failures=after_failures,
    )


def one_run(
    records: dict[AlertKey, AlertRecord],
    problems: list[Problem],
    cleared: set[AlertKey],
    now: datetime,
    send_ok: bool = True,
    channels: tuple[str, ...] = MAIL,
    working: tuple[str, ...] | None = None,
    after_failures: int = 1,
) -> list[Outgoing]:
    """What the runner does: plan, 'send', persist. Returns the messages tried.

    ``working`` are the channels that deliver (default: all when ``send_ok``).
    """
    works = set(channels if working is None else working) if send_ok else set()
    decisions = plan(records, problems, cleared, now, channels, after_failures)
    for decision in decisions:
        delivered = {c for m in decision.messages for c in m.channels if c in works}
        record = record_after_send(decision, delivered, now)
        if record is None:
            del records[decision.key]
        else:
            records[decision.key] = record
    return [m for d in decisions for m in d.messages]


def kinds(messages: list[Outgoing]) -> list[str]:
    return [outgoing.message_kind for outgoing in messages]


def to(messages: list[Outgoing]) -> list[tuple[str, tuple[str, ...]]]:
    return [(m.message_kind, m.channels) for m in messages]


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
    [decision] = plan(records, [problem()], set(), T0 + DAY / 2)
    assert decision.messages == () and decision.record.resolved_at is None
    one_run(records, [problem()], set(), T0 + DAY / 2)
    assert records[key].resolved_at is None
    assert one_run(records, [], set(), T0 + DAY / 2) == []  # no stray "resolved"
    assert kinds(one_run(records, [problem()], set(), T0 + DAY)) == ["reminder"]


def test_reported_wins_over_cleared_and_duplicates_count_once() -> None:
    key = ("raw", Kind.ENDPOINT_NOT_READY)
    [decision] = plan({}, [problem(), problem()], {key}, T0)
    assert kinds(list(decision.messages)) == ["new"]


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
        plan({}, [problem()], set(), datetime(2025, 1, 1))


def test_problem_round_trips_through_a_dict() -> None:
    original = problem(pending_files=2, pending_bytes=10)
    assert Problem.from_dict(original.to_dict()) == original
    assert original.to_dict()["kind"] == "endpoint-not-ready"


# --- the grace ----------------------------------------------------------------------


def test_one_passing_outage_alerts_nobody() -> None:
    records: dict[AlertKey, AlertRecord] = {}
    key = ("raw", Kind.ENDPOINT_NOT_READY)
    assert one_run(records, [problem()], set(), T0, after_failures=2) == []
    assert records[key].failures == 1 and records[key].sent == {}
    later = T0 + timedelta(minutes=15)
    assert one_run(records, [], {key}, later, after_failures=2) == []  # no "resolved"
    assert records == {}


def test_the_second_failing_run_in_a_row_alerts() -> None:
    records: dict[AlertKey, AlertRecord] = {}
    key = ("raw", Kind.ENDPOINT_NOT_READY)
    assert one_run(records, [problem()], set(), T0, after_failures=2) == []
    later = T0 + timedelta(minutes=15)
    assert kinds(one_run(records, [problem()], set(), later, after_failures=2)) == [
        "new"
    ]
    assert records[key].first_seen == T0  # "failing since" the first run
    cleared = one_run(records, [], {key}, later + DAY, after_failures=2)
    assert kinds(cleared) == ["resolved"]


@pytest.mark.parametrize("kind", sorted(set(Kind) - GRACE_KINDS))
def test_kinds_that_need_a_person_alert_at_once(kind: Kind) -> None:
    records: dict[AlertKey, AlertRecord] = {}
    found = [problem(kind=kind)]
    assert kinds(one_run(records, found, set(), T0, after_failures=3)) == ["new"]
    assert grace_for(kind, 3) == 1


def test_the_kinds_with_a_grace_are_those_a_passing_outage_makes() -> None:
    assert {kind.value for kind in GRACE_KINDS} <= GRACE_VALUES
    assert Kind.ENDPOINT_NOT_READY in GRACE_KINDS and Kind.UNEXPECTED in GRACE_KINDS
    assert Kind.LOGIN_REQUIRED not in GRACE_KINDS


def test_a_count_from_an_old_blip_does_not_shorten_a_new_grace() -> None:
    records: dict[AlertKey, AlertRecord] = {}
    one_run(records, [problem()], set(), T0, after_failures=2)  # never cleared
    days_later = T0 + DAY * 3
    assert one_run(records, [problem()], set(), days_later, after_failures=2) == []
    [record] = records.values()
    assert record.failures == 1 and record.first_seen == days_later


def test_a_repeat_of_zero_hours_still_keeps_the_grace() -> None:
    records: dict[AlertKey, AlertRecord] = {}
    for minutes, expected in ((0, ()), (15, ("new",)), (30, ("reminder",))):
        now = T0 + timedelta(minutes=minutes)
        [decision] = plan_alerts(
            list(records.values()),
            [problem()],
            (),
            now,
            timedelta(0),
            channels=lambda job: MAIL,
            after_failures=2,
        )
        assert tuple(m.message_kind for m in decision.messages) == expected
        record = record_after_send(decision, set(MAIL), now)
        assert record is not None
        records[decision.key] = record


# --- channels -----------------------------------------------------------------------


def test_a_failed_channel_alone_is_retried_and_the_mail_is_not_resent() -> None:
    records: dict[AlertKey, AlertRecord] = {}
    key = ("raw", Kind.ENDPOINT_NOT_READY)
    first = one_run(records, [problem()], set(), T0, channels=BOTH, working=MAIL)
    assert to(first) == [("new", BOTH)]
    assert set(records[key].sent) == {"mail"}
    later = T0 + timedelta(minutes=15)
    again = one_run(records, [problem()], set(), later, channels=BOTH)
    assert to(again) == [("new", ("notify:1",))]
    assert records[key].sent == {"mail": T0, "notify:1": later}
    done = one_run(records, [], {key}, later + DAY / 2, channels=BOTH, working=MAIL)
    assert to(done) == [("resolved", BOTH)]
    assert set(records[key].sent) == {"notify:1"}  # still owes its "resolved"
    final = one_run(records, [], set(), later + DAY, channels=BOTH)
    assert to(final) == [("resolved", ("notify:1",))]
    assert records == {}


def test_a_channel_that_never_carried_the_alert_gets_no_resolved() -> None:
    records: dict[AlertKey, AlertRecord] = {}
    key = ("raw", Kind.ENDPOINT_NOT_READY)
    one_run(records, [problem()], set(), T0, channels=BOTH, working=MAIL)
    done = one_run(records, [], {key}, T0 + DAY / 2, channels=BOTH)
    assert to(done) == [("resolved", MAIL)]
    assert records == {}


def test_channels_new_and_removed_while_an_alert_is_open() -> None:
    records: dict[AlertKey, AlertRecord] = {}
    key = ("raw", Kind.ENDPOINT_NOT_READY)
    one_run(records, [problem()], set(), T0)
    later = T0 + timedelta(hours=1)
    added = one_run(records, [problem()], set(), later, channels=BOTH)
    assert to(added) == [("new", ("notify:1",))]  # the new channel hears of it
    gone = ("notify:1",)
    assert one_run(records, [problem()], set(), later, channels=gone) == []
    assert set(records[key].sent) == {"notify:1"}
    assert to(one_run(records, [], {key}, later, channels=gone)) == [("resolved", gone)]


def test_no_channel_keeps_the_record_and_sends_nothing() -> None:
    records: dict[AlertKey, AlertRecord] = {}
    key = ("raw", Kind.ENDPOINT_NOT_READY)
    assert one_run(records, [problem()], set(), T0, channels=()) == []
    assert records[key].failures == 1
    assert one_run(records, [], {key}, T0, channels=()) == []
    assert records == {}


def test_records_round_trip_and_an_earlier_version_s_record_reads() -> None:
    record = AlertRecord(problem(), T0, {"mail": T0, "notify:1": T0 + DAY}, None, 3, T0)
    assert record_from_dict(record_to_dict(record)) == record
    legacy = {
        "problem": problem().to_dict(),
        "first_seen": T0.isoformat(),
        "last_sent": T0.isoformat(),
        "resolved_at": None,
    }
    read = record_from_dict(legacy)
    assert read.sent == {"mail": T0} and read.failures == 0
    unsent = record_from_dict({**legacy, "last_sent": None})
    assert unsent.sent == {} and unsent.last_sent is None


# --- composition ------------------------------------------------------------------


def compose_for(outgoing: Outgoing, now: datetime = T0) -> tuple[str, str]:
    message = compose(outgoing, "g@lab.example", ["ops@lab.example"], now, "host1")
    assert message["Date"] and message["Message-ID"]
    return str(message["Subject"]), message.get_content()


def only_message(decisions: list[Decision]) -> Outgoing:
    [decision] = decisions
    [message] = decision.messages
    return message


def test_new_mail_subject_and_body() -> None:
    new = only_message(
        plan({}, [problem(pending_files=1, pending_bytes=3 << 30)], (), T0)
    )
    subject, body = compose_for(new)
    assert subject == "[globus-auto] raw: endpoint-not-ready for raw"
    assert "1 file (3.0 GiB) waiting to be sent" in body
    for expected in ("paused", "Run: globus-auto check", "next cron run", "host1"):
        assert expected in body


def test_reminder_and_resolved_subjects() -> None:
    records: dict[AlertKey, AlertRecord] = {}
    one_run(records, [problem()], set(), T0)
    reminder = only_message(plan(records, [problem()], (), T0 + DAY))
    subject, body = compose_for(reminder, T0 + DAY)
    assert subject.endswith("(still failing since 2025-03-01 12:00 UTC)")
    assert "lasted since 2025-03-01 12:00 UTC" in body
    key = ("raw", Kind.ENDPOINT_NOT_READY)
    resolved = only_message(plan(records, [], {key}, T0 + DAY))
    subject, body = compose_for(resolved, T0 + DAY)
    assert subject == "[globus-auto] raw: resolved: endpoint-not-ready for raw"
    assert "found fine again 2025-03-02 12:00 UTC" in body


@given(st.text())
def test_header_safe_never_keeps_a_line_break(text: str) -> None:
    safe = header_safe(text)
    assert "\r" not in safe and "\n" not in safe
    assert all(ord(c) >= 0x20 for c in safe)


@given(st.text(min_size=1, max_size=300))
def test_any_job_name_gives_a_single_line_subject(job: str) -> None:
    new = only_message(plan({}, [problem(job=job)], (), T0))
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


Run = tuple[timedelta, set[AlertKey], set[AlertKey], tuple[str, ...]]


@st.composite
def runs(draw: st.DrawFn) -> list[Run]:
    """Runs: (time since the previous run, reported, cleared, channels working)."""
    result = []
    for _ in range(draw(st.integers(1, 40))):
        gap = timedelta(minutes=draw(st.integers(0, 36 * 60)))
        reported = draw(st.sets(st.sampled_from(KEYS)))
        cleared = draw(st.sets(st.sampled_from(KEYS))) - reported
        working = tuple(c for c in BOTH if draw(st.booleans()))
        result.append((gap, reported, cleared, working))
    return result


@settings(max_examples=150, deadline=None)
@given(runs())
def test_per_channel_one_message_per_window_grace_kept_and_every_alert_resolves(
    schedule: list[Run],
) -> None:
    records: dict[AlertKey, AlertRecord] = {}
    now = T0
    last_told: dict[tuple[AlertKey, str], datetime] = {}  # problem messages
    streak = dict.fromkeys(KEYS, 0)  # runs in a row reporting it
    for gap, reported, cleared, working in schedule:
        now += gap
        for key in KEYS:
            streak[key] = streak[key] + 1 if key in reported else streak[key]
            streak[key] = 0 if key in cleared else streak[key]
        found = [problem(job, kind) for job, kind in reported]
        tried = one_run(
            records, found, cleared, now, True, BOTH, working, after_failures=2
        )
        pairs = [(m.key, c) for m in tried for c in m.channels]
        assert len(set(pairs)) == len(pairs)  # one message per channel per run
        for message in tried:
            for channel in set(message.channels) & set(working):
                pair = (message.key, channel)
                if message.message_kind == "resolved":
                    del last_told[pair]
                    continue
                previous = last_told.get(pair)
                assert previous is None or now - previous >= DAY
                if not any(k == message.key for k, _ in last_told):  # a new episode
                    assert streak[message.key] >= grace_for(message.key[1], 2)
                last_told[pair] = now
        for key in reported:  # nothing reported is ever forgotten
            assert records[key].resolved_at is None
            told = {c for k, c in last_told if k == key}
            assert set(records[key].sent) == told
    # Everything clears and every channel works: one run sends every "resolved",
    # each to exactly the channels that carried the alert.
    tried = one_run(records, [], set(KEYS), now + timedelta(minutes=5), channels=BOTH)
    assert {(m.key, c) for m in tried for c in m.channels} == set(last_told)
    assert all(m.message_kind == "resolved" for m in tried)
    assert records == {}
