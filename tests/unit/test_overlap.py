"""Configs that would lose data: overlapping destinations, a destination in
its own source (pure, fast; through the real config loader)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from globus_auto.errors import ConfigError
from globus_auto.settings import source

CLIENT = "0e7d2f3a-1b2c-4d5e-8f90-a1b2c3d4e5f6"
A = "6a1f6f2e-5e5b-4c3e-9e1a-0c1d2e3f4a5b"
B = "9d4e1e0c-3b2a-4f1e-8d7c-6b5a4f3e2d1c"


def job(name: str, src: str, dst: str, src_id: str = A, dst_id: str = B) -> str:
    return (
        f"dict(name={name!r}, src_id={src_id!r}, src_dir={src!r},"
        f" dst_id={dst_id!r}, dst_dir={dst!r})"
    )


def load_problems(tmp_path: Path, text: str) -> list[str]:
    """The problem lines of a config, or [] when it loads."""
    path = tmp_path / "config.py"
    path.write_text(f"CLIENT_ID = {CLIENT!r}\n" + textwrap.dedent(text))
    path.chmod(0o600)
    try:
        source.load_settings(path, {})
    except ConfigError as exc:
        return str(exc).splitlines()
    return []


def transfers(*jobs: str) -> str:
    return "TRANSFERS = [" + ", ".join(jobs) + "]\n"


REFUSED_PAIRS = [
    pytest.param(job("a", "/s1", "/d"), job("b", "/s2", "/d"), id="same-dst"),
    pytest.param(job("a", "/s1", "/d/"), job("b", "/s2", "/d//"), id="slashes"),
    pytest.param(job("a", "/s1", "/d/./x"), job("b", "/s2", "/d/x"), id="dot"),
    pytest.param(job("a", "/s1", "/d"), job("b", "/s2", "/d/sub"), id="nested"),
    pytest.param(job("a", "/s1", "/d/sub"), job("b", "/s2", "/d"), id="nested-rev"),
    pytest.param(
        job("a", "/s1", "/d"), job("b", "/s1/x", "/d/y"), id="nested-other-offset"
    ),
    pytest.param(
        job("a", "/s", "/d", src_id=A),
        job("b", "/s/sub", "/d/sub", src_id=B),
        id="same-nesting-other-source-collection",
    ),
    pytest.param(
        job("a", "/s1", "/d", dst_id=B),
        job("b", "/s2", "/d", dst_id=B.upper()),
        id="id-case",
    ),
    pytest.param(job("a", "/s1", "/"), job("b", "/s2", "/d"), id="root"),
]


@pytest.mark.parametrize(("first", "second"), REFUSED_PAIRS)
def test_overlapping_destinations_are_refused(
    tmp_path: Path, first: str, second: str
) -> None:
    lines = load_problems(tmp_path, transfers(first, second))
    assert len(lines) == 1, lines
    line = lines[0]
    assert "TRANSFERS[1].dst_dir: jobs 'a' and 'b'" in line
    assert "TRANSFERS[0].dst_dir /" in line
    assert "would overwrite each other" in line
    assert "give each job its own destination folder" in line


ALLOWED_PAIRS = [
    pytest.param(job("a", "/s", "/d1"), job("b", "/s", "/d2"), id="same-src"),
    pytest.param(
        job("a", "/s1", "/d", dst_id=A),
        job("b", "/s2", "/d", dst_id=B),
        id="other-coll",
    ),
    pytest.param(job("a", "/s1", "/d/run"), job("b", "/s2", "/d/run2"), id="prefix"),
    pytest.param(job("a", "/s", "/d"), job("b", "/s/sub", "/d/sub"), id="same-nesting"),
]


@pytest.mark.parametrize(("first", "second"), ALLOWED_PAIRS)
def test_separate_destinations_load(tmp_path: Path, first: str, second: str) -> None:
    assert load_problems(tmp_path, transfers(first, second)) == []


def test_seed_job_and_transfers_entry_clash(tmp_path: Path) -> None:
    text = f"""\
    SRC_ID = {A!r}
    SRC_DIR = '/data'
    DST_ID = {B!r}
    DST_DIR = '/archive/'
    """ + transfers(job("other", "/elsewhere", "/archive"))
    (line,) = load_problems(tmp_path, text)
    assert "TRANSFERS[0].dst_dir: jobs 'default' and 'other' both write to" in line
    assert line.endswith(
        "(DST_DIR /archive, TRANSFERS[0].dst_dir /archive): files of the same name"
        " would overwrite each other; give each job its own destination folder,"
        " neither inside the other, e.g. /archive/default and /archive/other"
    )


def test_every_clash_is_one_line(tmp_path: Path) -> None:
    text = transfers(job("a", "/1", "/d"), job("b", "/2", "/d"), job("c", "/3", "/d"))
    lines = load_problems(tmp_path, text)
    assert len(lines) == 3
    assert sum("jobs 'a' and 'b'" in line for line in lines) == 1
    assert sum("jobs 'a' and 'c'" in line for line in lines) == 1
    assert sum("jobs 'b' and 'c'" in line for line in lines) == 1


@pytest.mark.parametrize(
    ("src", "dst", "how"),
    [
        ("/data", "/data/", "is its source folder"),
        ("/data", "/data/copy", "is inside its source folder"),
        ("/data/raw", "/data", "contains its source folder"),
        ("/data/raw", "/", "contains its source folder"),
    ],
)
def test_destination_overlapping_its_own_source_is_refused(
    tmp_path: Path, src: str, dst: str, how: str
) -> None:
    text = transfers(job("self", src, dst, src_id=A, dst_id=A.upper()))
    (line,) = load_problems(tmp_path, text)
    assert "TRANSFERS[0].dst_dir: job 'self': the destination " in line
    assert how in line
    assert f"(TRANSFERS[0].src_dir {src}, both on collection {A})" in line
    assert "choose a destination outside the source folder" in line


@pytest.mark.parametrize(
    ("src", "dst", "dst_id"),
    [("/data", "/data", B), ("/data", "/data2", A), ("/data2", "/data", A)],
)
def test_own_source_elsewhere_loads(
    tmp_path: Path, src: str, dst: str, dst_id: str
) -> None:
    assert load_problems(tmp_path, transfers(job("j", src, dst, dst_id=dst_id))) == []


def test_seed_job_into_its_own_source(tmp_path: Path) -> None:
    text = f"""\
    SRC_ID = {A!r}
    SRC_DIR = '/data'
    DST_ID = {A!r}
    DST_DIR = '/data/backup'
    """
    (line,) = load_problems(tmp_path, text)
    assert line.split(": ", 1)[1].startswith(
        "DST_DIR: job 'default': the destination /data/backup is inside its source"
    )
    assert "(SRC_DIR /data," in line
