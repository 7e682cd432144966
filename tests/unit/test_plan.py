"""Pure units: the transfer plan (what each task carries), from plain values."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from globus_auto.datastore.records import PendingFile
from globus_auto.engine import plan
from globus_auto.settings.model import GlobusMailChoice

NOW = datetime(2026, 5, 1, tzinfo=timezone.utc)


def test_collection_paths_round_trip() -> None:
    assert plan.collection_path("/data", b"a/b.txt") == "/data/a/b.txt"
    assert plan.collection_path("/", b"x") == "/x"
    assert plan.relative_path("/data", "/data/a/b.txt") == b"a/b.txt"
    assert plan.relative_path("/data", "/database/x") is None
    assert plan.relative_path("/", "/x/y") == b"x/y"


def test_label_fits_globus_rules() -> None:
    label = plan.task_label("job\nname" + "x" * 300)
    assert "\n" not in label and len(label) <= 128
    assert label.startswith("globus-auto job name")


def test_recursion_only_when_nothing_must_be_held_back() -> None:
    assert plan.may_recurse(("*.tmp",), 0, 0)
    assert not plan.may_recurse(("cache/*",), 0, 0)  # a path, not a name
    # A bare name matches at any depth, in gitignore rules as in a Globus
    # filter rule; "/cache" is the top-level folder only, which no rule says.
    assert plan.may_recurse(("cache", "*o*r", "**/core.[0-9]"), 0, 0)
    assert not plan.may_recurse(("/cache",), 0, 0)
    assert not plan.may_recurse(("build/",), 0, 0)  # folders only
    assert not plan.may_recurse(("*.tmp", "!keep.tmp"), 0, 0)
    assert plan.may_recurse(("*.tmp", "*~"), 0, 0)
    assert not plan.may_recurse((), 3, 0)  # too-young files would go too
    assert not plan.may_recurse((), 0, 1)  # unsendable files would go too
    assert plan.choose_mode(5000, 1000, True) == "directory"
    assert plan.choose_mode(5000, 1000, False) == "files"
    assert plan.choose_mode(10, 1000, True) == "files"


def test_file_plan_items_and_totals() -> None:
    files = [PendingFile(b"a", 3, b"d1"), PendingFile(b"s/b", 4, b"d2")]
    made = plan.file_plan(
        job_name="j",
        source_id="S",
        source_dir="/src",
        destination_id="D",
        destination_dir="/dst",
        files=files,
        mails=plan.GlobusMails(on_failed=True),
    )
    assert made.mails == plan.GlobusMails(on_failed=True)
    assert [(i.source, i.destination, i.recursive) for i in made.items] == [
        ("/src/a", "/dst/a", False),
        ("/src/s/b", "/dst/s/b", False),
    ]
    assert (made.count, made.bytes, made.recursive) == (2, 7, False)


def test_directory_plan_uses_filter_rules_for_name_patterns() -> None:
    made = plan.directory_plan(
        job_name="j",
        source_id="S",
        source_dir="/src",
        destination_id="D",
        destination_dir="/dst",
        count=9,
        size=99,
        exclude=("*.tmp",),
        mails=plan.GlobusMails(),
    )
    assert made.items == (plan.TransferItem("/src", "/dst", recursive=True),)
    assert made.exclude_names == ("*.tmp",)


@pytest.mark.parametrize(
    ("configured", "alerts_someone", "expected"),
    [
        # The tool alerts someone: Globus's own mails would be duplicates.
        (GlobusMailChoice(), True, plan.GlobusMails(False, False, False)),
        # Nobody hears from the tool: Globus tells of failed or suspended tasks.
        (GlobusMailChoice(), False, plan.GlobusMails(False, True, True)),
        # The config decides each, whatever the default would be.
        (
            GlobusMailChoice(on_succeeded=True, on_failed=False),
            False,
            plan.GlobusMails(True, False, True),
        ),
    ],
)
def test_globus_mails_only_where_nobody_else_tells(
    configured: GlobusMailChoice, alerts_someone: bool, expected: plan.GlobusMails
) -> None:
    assert plan.globus_mails(configured, alerts_someone) == expected
