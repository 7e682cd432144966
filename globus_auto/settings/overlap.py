"""Configs that would lose data: a job's destination overlapping its own
source, or two jobs writing the same destination folder.

Part of the validation of :mod:`.validate`, kept apart so each module stays
small. Imports :mod:`.model` and :mod:`.values`.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Sequence

from globus_auto.settings.model import Job
from globus_auto.settings.values import ValueChecker


class OverlapChecker(ValueChecker):
    """The checks of where each job writes."""

    def check_own_paths(self, job: Job, label: Callable[[str], str]) -> None:
        """Refuse a job whose destination and source overlap on one collection.

        Why each case loses data or loops: a destination equal to the source
        copies every file onto itself; one inside the source is itself part of
        the source, so every run sends its own output again, one level deeper,
        without end; a source inside the destination means a source folder
        whose relative path begins with the source's own place in the
        destination (say /data/raw/raw/f, sent from /data/raw to /data) is
        written over the source's own files (/data/raw/f).
        """
        if job.src_id != job.dst_id:
            return
        src, dst = job.src_dir, job.dst_dir
        if dst == src:
            how = "is its source folder"
        elif is_inside(dst, src):
            how = "is inside its source folder, so every run would send its own "
            how += "output again, one level deeper"
        elif is_inside(src, dst):
            how = "contains its source folder, so files sent could overwrite the "
            how += "source's own files"
        else:
            return
        self.problem(
            label("dst_dir"),
            f"job {job.name!r}: the destination {dst} {how} ({label('src_dir')} "
            f"{src}, both on collection {job.src_id}); choose a destination outside "
            "the source folder, or on another collection",
        )

    def check_destinations(
        self, placed: Sequence[tuple[Job, Callable[[str], str]]]
    ) -> None:
        """Refuse two jobs writing the same destination folder, or one inside
        the other's, on one collection.

        Why: a file of one job (say results.csv) would silently replace the
        other's of the same name, and neither job would ever notice. Two jobs
        with the same source and different destinations are fine.
        """
        for i, (second, second_label) in enumerate(placed):
            for first, first_label in placed[:i]:
                if first.identity == second.identity:
                    continue  # already refused as a duplicate job
                clash = destination_clash(first, second)
                if clash is None:
                    continue
                a, b = first_label("dst_dir"), second_label("dst_dir")
                outer = min(first.dst_dir, second.dst_dir, key=len)
                self.problem(
                    b,
                    f"jobs {first.name!r} and {second.name!r} {clash} on collection "
                    f"{second.dst_id} ({a} {first.dst_dir}, {b} {second.dst_dir}): "
                    "files of the same name would overwrite each other; give each "
                    "job its own destination folder, neither inside the other, e.g. "
                    f"{posixpath.join(outer, first.name)} and "
                    f"{posixpath.join(outer, second.name)}",
                )


def is_inside(path: str, folder: str) -> bool:
    """True when ``path`` is strictly below ``folder`` (both normalized), at a
    '/' boundary: /data/run2 is not inside /data/run."""
    prefix = folder if folder.endswith("/") else folder + "/"
    return path != folder and path.startswith(prefix)


def destination_clash(first: Job, second: Job) -> str | None:
    """How two jobs' destinations overlap, as words to follow "jobs 'a' and
    'b'", or None when they are apart.

    Collection ids are canonical lowercase UUIDs and paths normalized by the
    value checks, so plain comparison is exact. One destination inside the
    other is allowed only when the sources nest the same way on the same
    collection, as then both jobs send the same file to every path.
    """
    if first.dst_id != second.dst_id:
        return None
    if first.dst_dir == second.dst_dir:
        return f"both write to {first.dst_dir}"
    outer, inner = sorted((first, second), key=lambda job: len(job.dst_dir))
    if not is_inside(inner.dst_dir, outer.dst_dir):
        return None
    # The same nesting on the source side (/src -> /dst and /src/sub ->
    # /dst/sub) sends the same file to each path: redundant, never a loss.
    sub = posixpath.relpath(inner.dst_dir, outer.dst_dir)
    if inner.src_id == outer.src_id and inner.src_dir == posixpath.join(
        outer.src_dir, sub
    ):
        return None
    return "write to folders one inside the other"
