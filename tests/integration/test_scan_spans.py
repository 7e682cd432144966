"""Spans cut one scan into several (engine/walk.Span, engine/scouts.py).

The scouts' promise is that scanning the spans of a tree, each against its own
rows, finds exactly what one scan of the whole tree finds: every change once,
in the span its path is in. Checked here without forking, on trees built to
hit the edges (a folder ``a`` beside files ``a.txt`` and ``a-1``, names that
cannot be sent, special files, folders turned into files and back), against
spans cut at every kind of path, with the serial and the parallel walk.
"""

from __future__ import annotations

import os
import random
import shutil
import stat
from datetime import datetime, timezone
from pathlib import Path

import pytest
from scans import scan_once

from globus_auto.datastore.opening import open_datastore
from globus_auto.datastore.store import Datastore
from globus_auto.engine import scan, walk, walk_parallel
from globus_auto.engine.scan import Pair
from globus_auto.engine.walk import Span, safe_bound

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)

NAMES = [b"a", b"a.txt", b"a-1", b"a0", b"b", b".hidden", b"z z", b"a b"]


@pytest.fixture(params=[1, 4], ids=["serial", "parallel"])
def threads(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setenv(walk_parallel.PARALLEL_VARIABLE, "1")
    return int(request.param)


def build(root: Path, rng: random.Random, depth: int = 0) -> None:
    """A random folder of files and subfolders whose names sort around '/'."""
    root.mkdir(exist_ok=True)
    for name in rng.sample(NAMES, rng.randint(1, len(NAMES))):
        path = os.path.join(os.fsencode(root), name)
        if os.path.lexists(path):
            continue
        if depth < 2 and rng.random() < 0.4:
            build(Path(os.fsdecode(path)), rng, depth + 1)
        else:
            with open(path, "wb") as handle:
                handle.write(rng.randbytes(rng.randint(0, 40)))
    if rng.random() < 0.3:
        with open(os.path.join(os.fsencode(root), b"bad\xffname"), "wb"):
            pass
    if rng.random() < 0.4:  # a folder that cannot be sent, and files beside it
        os.mkdir(os.path.join(os.fsencode(root), b"q\xff"))
        for name in (b"q\xff.txt", b"q\xff-1"):
            with open(os.path.join(os.fsencode(root), name), "wb"):
                pass
    if rng.random() < 0.2:
        os.mkfifo(root / "fifo")


def mutate(root: Path, rng: random.Random) -> None:
    """Change, delete, add, and turn files into folders and back."""
    (root / "a.added").write_bytes(b"always one change")
    for dirpath, dirnames, filenames in os.walk(os.fsencode(root)):
        for name in filenames:
            path = os.path.join(dirpath, name)
            roll = rng.random()
            if roll < 0.15:
                os.unlink(path)
            elif roll < 0.3 and not os.path.islink(path) and name != b"fifo":
                with open(path, "ab") as handle:
                    handle.write(b"more")
            elif roll < 0.38:
                os.unlink(path)
                os.mkdir(path)
                with open(os.path.join(path, b"inside"), "wb") as handle:
                    handle.write(b"new")
        for name in list(dirnames):
            if rng.random() < 0.1:
                path = os.path.join(dirpath, name)
                shutil.rmtree(path)
                with open(path, "wb") as handle:
                    handle.write(b"was a folder")
                dirnames.remove(name)
        if rng.random() < 0.3:
            with open(os.path.join(dirpath, b"a.new"), "wb") as handle:
                handle.write(b"added")


def first_scan(store: Datastore, root: bytes, threads: int) -> int:
    scan_once(store, root, threads)
    return store.job_id("job", "job", NOW)


def pairs_of(
    store: Datastore, job: int, root: bytes, threads: int, span: Span | None
) -> list[Pair]:
    reader = store.reader()
    try:
        low, high = (b"", None) if span is None else (span.low, span.high)
        runs = walk_parallel.walk_tree(root, None, threads, span).runs()
        pairs = list(
            scan.changed_pairs(runs, store.iter_stored(job, reader, low, high))
        )
    finally:
        reader.close()
    return [(None if e is None else tuple(e), r) for e, r in pairs]  # type: ignore[misc]


def path_of(pair: Pair) -> bytes:
    entry, row = pair
    return entry[0] if entry is not None else row[0] if row is not None else b""


def spans_at(bounds: list[bytes]) -> list[Span]:
    cuts = sorted({safe_bound(b) for b in bounds} - {b""})
    return [
        Span(low, high) for low, high in zip([b"", *cuts], [*cuts, None], strict=True)
    ]


def test_safe_bounds_never_fall_between_a_folder_and_its_contents() -> None:
    assert safe_bound(b"a.txt") == b"a"
    assert safe_bound(b"d/a-1/x") == b"d/a"
    assert safe_bound(b"d/.hidden") == b"d/.hidden"  # '.' right after '/'
    assert safe_bound(b"d/e/f") == b"d/e/f"
    assert safe_bound(b".x") == b".x"
    span = Span(b"d/a", None)
    assert span.has_file(b"d/a") and span.has_folder(b"d/a/")
    assert not Span(b"", b"d/a").has_folder(b"d/a/")


@pytest.mark.parametrize("seed", range(12))
def test_the_spans_of_a_tree_find_what_one_scan_finds(
    tmp_path: Path, threads: int, seed: int
) -> None:
    rng = random.Random(seed)
    src = tmp_path / "src"
    build(src, rng)
    root = os.fsencode(src)
    store = open_datastore(tmp_path / "state", NOW)
    job = first_scan(store, root, threads)
    mutate(src, rng)
    whole = pairs_of(store, job, root, threads, None)
    assert whole, "the mutation changed nothing: a test that cannot fail"
    paths = sorted({path_of(p) for p in whole} | {e.path for e in walk.walk(root)})
    for cut_count in (1, 2, 5):
        bounds = rng.sample(paths, min(cut_count, len(paths)))
        spans = spans_at(bounds)
        found: list[Pair] = []
        for span in spans:
            part = pairs_of(store, job, root, threads, span)
            assert all(span.has_file(path_of(p)) for p in part), span
            found += part
        assert sorted(found, key=path_of) == sorted(whole, key=path_of), spans


@pytest.mark.parametrize("seed", range(6))
def test_spans_find_every_change_where_every_folder_claims_no_subfolder(
    tmp_path: Path, threads: int, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SMB mounts without unix extensions give every folder a link count of 2
    (the Linux CIFS client's default), the sign the walk takes for "no
    subfolder": a folder a bound falls in must not be filtered as files."""
    real_fstat = os.fstat

    class TwoLinks:
        def __init__(self, st: os.stat_result) -> None:
            self._st = st
            self.st_nlink = 2

        def __getattr__(self, name: str) -> object:
            return getattr(self._st, name)

    def fstat(fd: int) -> object:
        st = real_fstat(fd)
        return TwoLinks(st) if stat.S_ISDIR(st.st_mode) else st

    rng = random.Random(seed)
    src = tmp_path / "src"
    build(src, rng)
    root = os.fsencode(src)
    store = open_datastore(tmp_path / "state", NOW)
    job = first_scan(store, root, threads)
    mutate(src, rng)
    monkeypatch.setattr(os, "fstat", fstat)
    whole = pairs_of(store, job, root, threads, None)
    paths = sorted({path_of(p) for p in whole} | {e.path for e in walk.walk(root)})
    for bound in paths:
        found: list[Pair] = []
        for span in spans_at([bound]):
            found += pairs_of(store, job, root, threads, span)
        assert sorted(found, key=path_of) == sorted(whole, key=path_of), bound


def test_each_span_walks_only_its_own_paths(tmp_path: Path, threads: int) -> None:
    """Without rows, a span's walk is the whole walk's entries in the span."""
    rng = random.Random(99)
    src = tmp_path / "src"
    src.mkdir()
    build(src / "a", rng)  # a folder "a", beside files "a.txt", "a-1" ...
    build(src, rng)
    root = os.fsencode(src)
    every = [tuple(e) for e in walk.walk(root)]
    for bound in [e[0] for e in every]:
        spans = spans_at([bound])
        parts = [
            [tuple(e) for e in walk_parallel.walk_tree(root, None, threads, s)]
            for s in spans
        ]
        assert [e for part in parts for e in part] == every, spans
