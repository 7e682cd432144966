#!/usr/bin/env python3
"""Benchmarks of issues 7 and 13: a run costs what changed, not the size of the
tree, and a slow network filesystem is scanned in parallel.

Builds synthetic trees in a temporary folder, runs the real command
``python -m globus_auto --config CONFIG run`` against the emulator running in
its own process (``python -m globus_auto emulator``), and prints eight figures,
each a ratio against a reference measured side by side in the same invocation
(whole processes, the median of several runs):

1. a run with nothing changed over 200,000 files in 2,000 folders, against
   ``find SRC -printf '%p %s %T@\\n'`` (target at most 1.5x, issue 13; 2.0x
   before), and the same run with SCAN_THREADS = 1;
2. the first run over 8 files of 256 MiB, against ``md5sum`` of the same files
   (target at most 0.35x);
3. 10 files changed among the 200,000, against the run with nothing changed
   (target at most 1.2x), with the bytes the scan read from the source;
4. peak RSS of a no-change run and of a first run at 300,000 files minus that
   at 100,000 files (target at most 20 MiB each);
5. the bytes the emulator checksums for the 10-file change, against a
   whole-directory checksum sync of the same tree (target at most 1%);
6. and 7. a no-change run over 10,000 files on a FUSE filesystem that delays
   every call by 0.5 ms and lets the kernel cache nothing (benchmarks/slowfs.py:
   an NFS whose attribute cache has expired), against ``find -printf`` (target
   at most 0.25x) and against a plain 16-thread stat walk of the same mount
   (benchmarks/parallel_stat.py, the floor; target at most 2x); fuse3 and
   mfusepy are installed when missing;
8. a first run and a no-change run over 1,000,000 files on the local
   filesystem: time and peak RSS (reported, no target).

Usage::

    python benchmarks/run.py            # all of the above (about 20 minutes)
    python benchmarks/run.py --only 67  # the FUSE figures only
    python benchmarks/run.py --smoke    # figures 1 to 5 on a few thousand files

The cache is warm for every timed run (each command runs once untimed first).
With ``--smoke`` the targets are printed but not enforced; otherwise the exit
status is 1 when a figure misses its target.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

MiB = 1 << 20


@dataclass(frozen=True)
class Sizes:
    """How big each synthetic tree is, and how often each command is timed."""

    files: int  # the tree of figures 1, 3 and 5
    folders: int
    big_files: int  # figure 2
    big_size: int
    rss_small: int  # figure 4 (files; folders keep files / folders of the main tree)
    rss_large: int
    changed: int  # figure 3 and 5
    repeat: int
    first_repeat: int  # first runs of figure 4 (each needs a fresh datastore)
    fuse_files: int = 10_000  # figures 6 and 7, in folders of 100
    fuse_repeat: int = 3
    million: int = 1_000_000  # figure 8, in folders of 100


FULL = Sizes(200_000, 2_000, 8, 256 * MiB, 100_000, 300_000, 10, 5, 3)
SMOKE = Sizes(
    2_000, 20, 2, 8 * MiB, 1_000, 3_000, 10, 1, 1, fuse_files=500, fuse_repeat=1
)
SMOKE = Sizes(**{**SMOKE.__dict__, "million": 5_000})

TARGETS: dict[int, float | None] = {
    1: 1.5,
    2: 0.35,
    3: 1.2,
    4: 20.0,
    5: 0.01,
    6: 0.25,
    7: 2.0,
    8: None,  # reported only
}
FUSE_DELAY_MS = 0.5
SCAN_THREADS = 16  # the default; the plain walk of figure 7 uses as many
HERE = Path(__file__).resolve().parent


# -- processes ----------------------------------------------------------------


@dataclass(frozen=True)
class Measured:
    """One finished process: wall time, peak RSS, exit status and output."""

    seconds: float
    maxrss_kib: int
    returncode: int
    stdout: str
    stderr: str


# Runs the measured command as its child and reports its wall time and its own
# peak RSS. Why a wrapper: Linux carries the RSS high-water mark of the process
# that forks over exec into the child's ru_maxrss, so a child forked straight
# from this (large) process would report this process's size. Forked from this
# small interpreter (python -S, a few MiB), the figure is the command's own.
WRAPPER = """
import os, sys, time
report, cmd = sys.argv[1], sys.argv[2:]
started = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(cmd[0], cmd)
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - started
with open(report, "w") as handle:
    handle.write(f"{seconds} {usage.ru_maxrss} {os.waitstatus_to_exitcode(status)}")
"""


def measure(
    cmd: Sequence[str], env: dict[str, str] | None = None, keep_stdout: bool = True
) -> Measured:
    """Run ``cmd`` to its end; its wall time, its own peak RSS and its output."""
    with tempfile.TemporaryDirectory() as tmp:
        out, err, report = (Path(tmp) / n for n in ("out", "err", "report"))
        with open(out, "wb") as stdout, open(err, "wb") as stderr:
            subprocess.run(
                [sys.executable, "-S", "-c", WRAPPER, str(report), *cmd],
                stdin=subprocess.DEVNULL,
                stdout=stdout if keep_stdout else subprocess.DEVNULL,
                stderr=stderr,
                env=env,
                check=True,
            )
        seconds, maxrss, status = report.read_text().split()
        return Measured(
            float(seconds),
            int(maxrss),
            int(status),
            out.read_text(errors="replace"),
            err.read_text(errors="replace"),
        )


def check(result: Measured, what: str) -> Measured:
    if result.returncode != 0:
        sys.exit(
            f"benchmark: {what} failed with status {result.returncode}:\n"
            f"{result.stdout}{result.stderr}"
        )
    return result


class EmulatorProcess:
    """``python -m globus_auto emulator`` in its own process."""

    def __init__(self, collections: dict[str, Path], client_id: str, secret: str):
        cmd = [sys.executable, "-m", "globus_auto", "emulator", "--port", "0"]
        for cid, root in collections.items():
            cmd += ["--collection", f"{cid}={root}"]
        cmd += ["--client", f"{client_id}:{secret}"]
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # the first line, printed once ready
        found = re.match(r"listening on (http://\S+)", line)
        if not found:
            self.stop()
            sys.exit(f"benchmark: the emulator did not start: {line!r}")
        self.url = found.group(1).rstrip("/") + "/"

    def stats(self) -> dict[str, object]:
        with urllib.request.urlopen(self.url + "_emulator/stats", timeout=10) as r:
            data: dict[str, object] = json.load(r)
            return data

    def checksummed(self) -> int:
        value = self.stats()["bytes_checksummed"]
        assert isinstance(value, int)
        return value

    def wait_idle(self, timeout: float = 3600.0) -> None:
        """Until no task is ACTIVE (the emulator runs one task at a time)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            tasks = self.stats()["tasks"]
            assert isinstance(tasks, dict)
            if not tasks.get("ACTIVE"):
                return
            time.sleep(0.05)
        sys.exit("benchmark: the emulator did not finish its tasks in time")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@contextmanager
def emulator(
    collections: dict[str, Path], client_id: str, secret: str
) -> Iterator[EmulatorProcess]:
    emu = EmulatorProcess(collections, client_id, secret)
    try:
        yield emu
    finally:
        emu.stop()


# -- trees and jobs -------------------------------------------------------------


def file_size(i: int) -> int:
    """Small files of 256 B to 2.25 KiB, spread deterministically."""
    return 256 + (i * 2654435761) % 2048


def build_tree(root: Path, files: int, folders: int, seed: int) -> int:
    """``files`` files spread evenly over ``folders`` folders; returns total bytes."""
    noise = random.Random(seed).randbytes(1 << 16)
    total = 0
    per_folder = -(-files // folders)
    for i in range(files):
        folder = root / f"d{i // per_folder:05d}"
        if i % per_folder == 0:
            folder.mkdir(parents=True)
        size = file_size(i)
        start = (i * 7919) % (len(noise) - size)
        with open(folder / f"f{i:07d}.dat", "wb") as handle:
            handle.write(noise[start : start + size - 8] + i.to_bytes(8, "big"))
        total += size
    return total


def build_big(root: Path, count: int, size: int) -> list[Path]:
    root.mkdir(parents=True)
    block = os.urandom(min(size, 64 * MiB))
    paths = []
    for n in range(count):
        path = root / f"big{n}.dat"
        with open(path, "wb") as handle:
            written = 0
            while written < size:
                piece = block[: size - written]
                handle.write(n.to_bytes(8, "big") + piece[8:])
                written += len(piece)
        paths.append(path)
    return paths


@dataclass
class Job:
    """One config.py, its state folder and the collections it names."""

    work: Path
    src_root: Path  # the source collection's root directory
    local: Path  # the folder globus-auto scans (SRC_LOCAL_DIR)
    dst_root: Path
    client_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    secret: str = field(default_factory=lambda: uuid.uuid4().hex)
    src_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    dst_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    config_name: str = "config.py"  # another name: another config, same state

    @property
    def state(self) -> Path:
        return self.work / "state"

    @property
    def config(self) -> Path:
        return self.work / self.config_name

    def collections(self) -> dict[str, Path]:
        return {self.src_id: self.src_root, self.dst_id: self.dst_root}

    def write_config(self, **extra: object) -> None:
        self.dst_root.mkdir(parents=True, exist_ok=True)
        self.work.mkdir(parents=True, exist_ok=True)
        self.config.write_text(
            f"CLIENT_ID = {self.client_id!r}\n"
            f"CLIENT_SECRET = {self.secret!r}\n"
            f"SRC_ID = {self.src_id!r}\n"
            f"SRC_DIR = '/tree'\n"
            f"SRC_LOCAL_DIR = {str(self.local)!r}\n"
            f"DST_ID = {self.dst_id!r}\n"
            f"DST_DIR = '/tree'\n"
            f"STATE_DIR = {str(self.state)!r}\n"
            # More than this many files to send go as one whole-directory task.
            "RECURSIVE_THRESHOLD = 100\n"
            + "".join(f"{name} = {value!r}\n" for name, value in extra.items())
        )
        self.config.chmod(0o600)

    def forget(self) -> None:
        shutil.rmtree(self.state, ignore_errors=True)

    def run(
        self,
        emu: EmulatorProcess,
        *extra: str,
        verbose: str = "-v",
        at_end: bool = False,
    ) -> Measured:
        """``python [extra] -m globus_auto --config C -v run`` (``extra`` after
        ``run`` instead with ``at_end``)."""
        env = command_env()
        env["GLOBUS_SDK_SERVICE_URL_TRANSFER"] = emu.url
        env["GLOBUS_SDK_SERVICE_URL_AUTH"] = emu.url
        python = [sys.executable, *(() if at_end else extra), "-m", "globus_auto"]
        cmd = [*python, "--config", str(self.config), verbose, "run"]
        return measure([*cmd, *(extra if at_end else ())], env)


def compile_package() -> None:
    """Byte-compile globus_auto, as pip does when it installs a package.

    Why: where PYTHONDONTWRITEBYTECODE is set (as in this project's shells),
    every module edited since its bytecode was written is compiled again by
    every measured run, which no installed copy does: with the modules edited
    in one day, 0.1 s of a no-change run's 0.8 s.
    """
    package = HERE.parent / "globus_auto"
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(package)],
        stdout=subprocess.DEVNULL,
        check=True,
    )


def command_env() -> dict[str, str]:
    """The environment of a measured globus-auto run: this one, but writing
    bytecode (a module edited while the benchmark runs is compiled once)."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def expect(result: Measured, pattern: str, what: str) -> Measured:
    check(result, what)
    if not re.search(pattern, result.stdout + result.stderr):
        sys.exit(
            f"benchmark: {what}: expected /{pattern}/ in its output:\n"
            f"{result.stdout}{result.stderr}"
        )
    return result


NOTHING = r"nothing to (do|send)"
SUBMITTED = r": submitted task"
DELIVERED = r"delivered [\d,]+ files"
READ = re.compile(r"read (\d+) files, (\d+) bytes")


# -- figures ------------------------------------------------------------------


@dataclass
class Figure:
    number: int
    text: str
    value: float  # compared with TARGETS[number]

    @property
    def ok(self) -> bool:
        target = TARGETS[self.number]
        return target is None or self.value <= target


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def main_tree_figures(work: Path, sizes: Sizes) -> list[Figure]:
    """Figures 1, 3 and 5: the tree of ``sizes.files`` small files."""
    job = Job(work, work / "src", work / "src/tree", work / "dst")
    say(f"building {sizes.files:,} files in {sizes.folders:,} folders ...")
    total = build_tree(job.local, sizes.files, sizes.folders, seed=1)
    job.write_config()
    find = ["find", str(job.local), "-printf", "%p %s %T@\\n"]
    with emulator(job.collections(), job.client_id, job.secret) as emu:
        say("first run (whole directory) and waiting for the emulator to copy ...")
        expect(job.run(emu), SUBMITTED, "the first run")
        emu.wait_idle()
        expect(job.run(emu), DELIVERED, "the run settling the first task")
        check(measure(find, keep_stdout=False), "find")  # warm both
        expect(job.run(emu), NOTHING, "a no-change run")
        sdk = job.run(emu, "-X", "importtime")
        sdk_imported = "globus_sdk" in sdk.stderr
        serial = dataclasses.replace(job, config_name="config-serial.py")
        serial.write_config(SCAN_THREADS=1)
        finds: list[float] = []
        still: list[float] = []
        still_serial: list[float] = []
        changed: list[float] = []
        scan_only: list[float] = []
        read_files: list[int] = []
        read_bytes: list[int] = []
        changed_bytes: list[int] = []
        checksummed: list[int] = []
        rng = random.Random(7)
        for rep in range(sizes.repeat):
            say(f"figures 1 and 3, round {rep + 1} of {sizes.repeat} ...")
            finds.append(check(measure(find, keep_stdout=False), "find").seconds)
            still.append(expect(job.run(emu), NOTHING, "a no-change run").seconds)
            one = expect(serial.run(emu), NOTHING, "a serial no-change run")
            still_serial.append(one.seconds)
            changed_bytes.append(change_files(job.local, sizes, rng))
            dry = expect(
                job.run(emu, "--dry-run", at_end=True), r"would be sent", "a dry run"
            )
            scan_only.append(dry.seconds)
            before = emu.checksummed()
            result = expect(
                job.run(emu, verbose="-vv"), SUBMITTED, "the run after a change"
            )
            changed.append(result.seconds)
            found = READ.search(result.stderr)
            if not found:
                sys.exit(f"benchmark: no scan summary at -vv:\n{result.stderr}")
            read_files.append(int(found.group(1)))
            read_bytes.append(int(found.group(2)))
            emu.wait_idle()
            checksummed.append(emu.checksummed() - before)
            expect(job.run(emu), DELIVERED, "the run settling the change")
        say("reference: a whole-directory checksum sync of the same tree ...")
        before = emu.checksummed()
        whole_directory_sync(emu, job)
        reference = emu.checksummed() - before
    return [
        Figure(
            1,
            f"no-change run over {sizes.files:,} files in {sizes.folders:,} folders: "
            f"{median(still):.3f} s; find -printf: {median(finds):.3f} s "
            f"(globus-sdk imported: {'yes' if sdk_imported else 'no'}); "
            f"with SCAN_THREADS = 1: {median(still_serial):.3f} s = "
            f"{median(still_serial) / median(finds):.2f}x",
            median(still) / median(finds),
        ),
        Figure(
            3,
            f"{sizes.changed} changed files among {sizes.files:,}: "
            f"{median(changed):.3f} s; no-change run: {median(still):.3f} s; "
            f"the same change with --dry-run (no Globus): "
            f"{median(scan_only):.3f} s = {median(scan_only) / median(still):.2f}x; "
            f"read {median(read_files):.0f} files, {median(read_bytes):,.0f} bytes "
            f"from the source for {median(changed_bytes):,.0f} bytes changed "
            f"(tree: {total:,} bytes)",
            median(changed) / median(still),
        ),
        Figure(
            5,
            f"emulator checksummed {median(checksummed):,.0f} bytes for the "
            f"{sizes.changed}-file change; a whole-directory checksum sync: "
            f"{reference:,} bytes",
            median(checksummed) / reference,
        ),
    ]


def change_files(root: Path, sizes: Sizes, rng: random.Random) -> int:
    """Rewrite ``sizes.changed`` files, spread over the tree, with new bytes."""
    changed = 0
    for i in rng.sample(range(sizes.files), sizes.changed):
        per_folder = -(-sizes.files // sizes.folders)
        path = root / f"d{i // per_folder:05d}" / f"f{i:07d}.dat"
        size = path.stat().st_size
        path.write_bytes(rng.randbytes(size))
        changed += size
    return changed


def whole_directory_sync(emu: EmulatorProcess, job: Job) -> None:
    """Submit what a sync without a datastore would: /tree, recursive, checksum."""
    os.environ["GLOBUS_SDK_SERVICE_URL_TRANSFER"] = emu.url
    os.environ["GLOBUS_SDK_SERVICE_URL_AUTH"] = emu.url
    import globus_sdk

    app = globus_sdk.ClientApp(
        "globus-auto-benchmark",
        client_id=job.client_id,
        client_secret=job.secret,
        config=globus_sdk.GlobusAppConfig(token_storage="memory"),
    )
    client = globus_sdk.TransferClient(app=app)
    data = globus_sdk.TransferData(
        job.src_id,
        job.dst_id,
        label="whole-directory checksum sync (benchmark reference)",
        sync_level="checksum",
        verify_checksum=True,
    )
    data.add_item("/tree", "/tree", recursive=True)
    client.submit_transfer(data)
    emu.wait_idle()


def big_file_figure(work: Path, sizes: Sizes) -> Figure:
    """Figure 2: the first run over a few big files, against md5sum."""
    job = Job(work, work / "src", work / "src/tree", work / "dst")
    say(f"building {sizes.big_files} files of {sizes.big_size // MiB} MiB ...")
    paths = [str(p) for p in build_big(job.local, sizes.big_files, sizes.big_size)]
    job.write_config()
    md5 = ["md5sum", *paths]
    check(measure(md5, keep_stdout=False), "md5sum")  # warm the cache
    runs: list[float] = []
    sums: list[float] = []
    for rep in range(sizes.repeat + 1):  # the first round only warms
        say(f"figure 2, round {rep} of {sizes.repeat} ...")
        sums.append(check(measure(md5, keep_stdout=False), "md5sum").seconds)
        job.forget()
        # A fresh emulator each time, stopped at once: its copy must not
        # overlap the next timed command.
        with emulator(job.collections(), job.client_id, job.secret) as emu:
            runs.append(expect(job.run(emu), SUBMITTED, "the first run").seconds)
        shutil.rmtree(job.dst_root)
        job.dst_root.mkdir()
    runs, sums = runs[1:], sums[1:]
    total = sizes.big_files * sizes.big_size
    return Figure(
        2,
        f"first run over {sizes.big_files} files of {sizes.big_size // MiB} MiB "
        f"({total / (1 << 30):.2f} GiB): {median(runs):.3f} s; "
        f"md5sum: {median(sums):.3f} s",
        median(runs) / median(sums),
    )


def rss_of(work: Path, files: int, sizes: Sizes) -> tuple[float, float]:
    """Peak RSS (MiB) of a first run and of a no-change run over ``files`` files.

    The source collection the emulator serves is an empty folder: the first
    run's whole-directory task then succeeds at once instead of copying every
    file, which the run being measured never sees (it only submits).
    """
    empty = work / "collection"
    (empty / "tree").mkdir(parents=True)
    job = Job(work, empty, work / "src/tree", work / "dst")
    per_folder = -(-sizes.files // sizes.folders)
    say(f"building {files:,} files for figure 4 ...")
    build_tree(job.local, files, -(-files // per_folder), seed=files)
    job.write_config()
    first: list[int] = []
    still: list[int] = []
    with emulator(job.collections(), job.client_id, job.secret) as emu:
        for _ in range(sizes.first_repeat):
            job.forget()
            first.append(expect(job.run(emu), SUBMITTED, "a first run").maxrss_kib)
            emu.wait_idle()
        expect(job.run(emu), DELIVERED, "the run settling the first task")
        for _ in range(sizes.repeat):
            still.append(expect(job.run(emu), NOTHING, "a no-change run").maxrss_kib)
    shutil.rmtree(work)
    return median(first) / 1024, median(still) / 1024


def memory_figure(work: Path, sizes: Sizes) -> Figure:
    """Figure 4: peak RSS at the larger tree minus that at the smaller one."""
    small = rss_of(work / "small", sizes.rss_small, sizes)
    large = rss_of(work / "large", sizes.rss_large, sizes)
    growth_first = large[0] - small[0]
    growth_still = large[1] - small[1]
    return Figure(
        4,
        f"peak RSS growth from {sizes.rss_small:,} to {sizes.rss_large:,} files: "
        f"no-change run {small[1]:.1f} -> {large[1]:.1f} MiB "
        f"(+{growth_still:.1f} MiB); first run {small[0]:.1f} -> {large[0]:.1f} MiB "
        f"(+{growth_first:.1f} MiB)",
        max(growth_first, growth_still),
    )


# -- figures 6 and 7: a slow network filesystem ---------------------------------


def ensure_fuse() -> None:
    """Install what the FUSE figures need when it is missing: the OS's fuse3
    (as root, with apt-get) and mfusepy (into this interpreter's environment)."""
    if shutil.which("fusermount3") is None:
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            sys.exit("benchmark: figures 6 and 7 need fuse3: apt-get install fuse3")
        say("installing fuse3 (apt-get) ...")
        install = ["apt-get", "install", "-y", "-q", "fuse3"]
        if subprocess.run(install, capture_output=True, check=False).returncode:
            subprocess.run(["apt-get", "update", "-q"], capture_output=True, check=True)
            subprocess.run(install, capture_output=True, check=True)
    if not os.path.exists("/dev/fuse"):
        sys.exit("benchmark: figures 6 and 7 need /dev/fuse (a FUSE-capable kernel)")
    probe = [sys.executable, "-c", "import mfusepy"]
    if subprocess.run(probe, capture_output=True, check=False).returncode != 0:
        say("installing mfusepy (pip) ...")
        pip = [sys.executable, "-m", "pip", "install", "-q", "mfusepy"]
        subprocess.run(pip, check=True)


@contextmanager
def slow_mount(source: Path, mountpoint: Path, delay_ms: float) -> Iterator[None]:
    """``source`` mounted read-only at ``mountpoint``, every call ``delay_ms`` late."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, str(HERE / "slowfs.py"), "--delay-ms", str(delay_ms)]
    proc = subprocess.Popen(
        [*cmd, str(source), str(mountpoint)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not os.path.ismount(mountpoint):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            _, err = proc.communicate()
            sys.exit(f"benchmark: the FUSE filesystem did not mount:\n{err}")
        time.sleep(0.05)
    try:
        yield
    finally:
        subprocess.run(["fusermount3", "-u", str(mountpoint)], check=False)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def fuse_figures(work: Path, sizes: Sizes) -> list[Figure]:
    """Figures 6 and 7: a no-change run on the slow FUSE mount, against find
    and against a plain parallel stat walk; also the first run there, and a
    no-change run with SCAN_THREADS = 1 (the serial walk)."""
    ensure_fuse()
    tree, mount = work / "src" / "tree", work / "mnt"
    folders = -(-sizes.fuse_files // 100)
    say(f"building {sizes.fuse_files:,} files in {folders:,} folders for figure 6 ...")
    build_tree(tree, sizes.fuse_files, folders, seed=6)
    # The emulator serves the tree itself; globus-auto scans it through FUSE.
    job = Job(work, work / "src", mount, work / "dst")
    job.write_config()
    serial = dataclasses.replace(job, work=work / "serial")  # the same job
    find = ["find", str(mount), "-printf", "%p %s %T@\n"]
    plain = [sys.executable, str(HERE / "parallel_stat.py"), str(mount)]
    plain += ["--threads", str(SCAN_THREADS)]
    finds: list[float] = []
    walks: list[float] = []
    still: list[float] = []
    with (
        slow_mount(tree, mount, FUSE_DELAY_MS),
        emulator(job.collections(), job.client_id, job.secret) as emu,
    ):
        say("figure 6: the first run through the slow filesystem ...")
        first = expect(job.run(emu), SUBMITTED, "the first run").seconds
        emu.wait_idle()
        expect(job.run(emu), DELIVERED, "the run settling the first task")
        shutil.copytree(job.state, serial.state)
        serial.write_config(SCAN_THREADS=1)
        say("figure 6: a no-change run with SCAN_THREADS = 1 ...")
        one = expect(serial.run(emu), NOTHING, "a serial no-change run").seconds
        check(measure(plain, keep_stdout=False), "the plain parallel walk")
        for rep in range(sizes.fuse_repeat):
            say(f"figures 6 and 7, round {rep + 1} of {sizes.fuse_repeat} ...")
            finds.append(check(measure(find, keep_stdout=False), "find").seconds)
            walks.append(check(measure(plain, keep_stdout=False), "walk").seconds)
            still.append(expect(job.run(emu), NOTHING, "a no-change run").seconds)
    run, ref, floor = median(still), median(finds), median(walks)
    where = (
        f"{sizes.fuse_files:,} files in {folders:,} folders, FUSE with "
        f"{FUSE_DELAY_MS} ms per call and no caching"
    )
    return [
        Figure(
            6,
            f"no-change run over {where}: {run:.3f} s; find -printf: {ref:.3f} s; "
            f"the same run with SCAN_THREADS = 1: {one:.3f} s = {one / ref:.2f}x; "
            f"the first run there: {first:.3f} s",
            run / ref,
        ),
        Figure(
            7,
            f"the same no-change run: {run:.3f} s; a plain {SCAN_THREADS}-thread "
            f"stat walk of the mount: {floor:.3f} s",
            run / floor,
        ),
    ]


# -- figure 8: a million files ----------------------------------------------------


def million_figure(work: Path, sizes: Sizes) -> Figure:
    """Figure 8: a first run and a no-change run over ``sizes.million`` files.

    As for figure 4, the source collection the emulator serves is an empty
    folder, so the first run's whole-directory task succeeds at once.
    """
    empty = work / "collection"
    (empty / "tree").mkdir(parents=True)
    job = Job(work, empty, work / "src/tree", work / "dst")
    folders = -(-sizes.million // 100)
    say(f"building {sizes.million:,} files in {folders:,} folders for figure 8 ...")
    build_tree(job.local, sizes.million, folders, seed=8)
    job.write_config()
    find = ["find", str(job.local), "-printf", "%p %s %T@\n"]
    with emulator(job.collections(), job.client_id, job.secret) as emu:
        say("figure 8: the first run ...")
        first = expect(job.run(emu), SUBMITTED, "the first run")
        emu.wait_idle()
        expect(job.run(emu), DELIVERED, "the run settling the first task")
        still: list[Measured] = []
        finds: list[float] = []
        for rep in range(max(1, sizes.fuse_repeat)):
            say(f"figure 8, no-change round {rep + 1} ...")
            finds.append(check(measure(find, keep_stdout=False), "find").seconds)
            still.append(expect(job.run(emu), NOTHING, "a no-change run"))
    shutil.rmtree(work)
    run = median([m.seconds for m in still])
    rss = median([m.maxrss_kib for m in still]) / 1024
    return Figure(
        8,
        f"{sizes.million:,} files in {folders:,} folders: first run "
        f"{first.seconds:.1f} s, peak RSS {first.maxrss_kib / 1024:.1f} MiB; "
        f"no-change run {run:.2f} s, peak RSS {rss:.1f} MiB; "
        f"find -printf {median(finds):.2f} s",
        run,
    )


def report(figures: list[Figure], smoke: bool) -> bool:
    units = {1: "x", 2: "x", 3: "x", 4: " MiB", 5: "", 6: "x", 7: "x", 8: " s"}
    print()
    for fig in sorted(figures, key=lambda f: f.number):
        target = TARGETS[fig.number]
        if target is None:
            print(f"figure {fig.number}: {fig.value:.1f}{units[fig.number]} (reported)")
            print(f"    {fig.text}")
            continue
        if fig.number == 5:
            shown, limit = f"{fig.value:.4%}", f"{target:.0%}"
        else:
            shown = f"{fig.value:.2f}{units[fig.number]}"
            limit = f"{target:g}{units[fig.number]}"
        verdict = "ok" if fig.ok else ("over target" if not smoke else "(smoke)")
        print(f"figure {fig.number}: {shown} (target <= {limit}) {verdict}")
        print(f"    {fig.text}")
    return all(f.ok for f in figures)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--smoke", action="store_true", help="small trees; check the script works"
    )
    parser.add_argument("--repeat", type=int, help="timed runs of each command")
    parser.add_argument("--workdir", type=Path, help="where to build (else a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument(
        "--only",
        help="figures to measure, e.g. 2 or 1,3,5 (1, 3 and 5 go together, and "
        "6 and 7); default all, and 1 to 5 with --smoke",
    )
    args = parser.parse_args(argv)
    if args.only is None:
        args.only = "1235,4" if args.smoke else "1235,4,67,8"
    sizes = SMOKE if args.smoke else FULL
    if args.repeat:
        sizes = Sizes(**{**sizes.__dict__, "repeat": args.repeat})
    parent = args.workdir or Path(tempfile.gettempdir())
    parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="globus-auto-bench-", dir=parent))
    started = time.monotonic()
    compile_package()
    figures: list[Figure] = []
    try:
        if set("135") & set(args.only):
            figures += main_tree_figures(work / "tree", sizes)
        if "2" in args.only:
            figures.append(big_file_figure(work / "big", sizes))
        if "4" in args.only:
            figures.append(memory_figure(work / "rss", sizes))
        if set("67") & set(args.only):
            figures += fuse_figures(work / "fuse", sizes)
        if "8" in args.only:
            figures.append(million_figure(work / "million", sizes))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    ok = report(figures, args.smoke)
    print(
        f"\n{'smoke ' if args.smoke else ''}benchmark took "
        f"{time.monotonic() - started:.0f} s on {os.cpu_count()} cores"
    )
    return 0 if ok or args.smoke else 1


if __name__ == "__main__":
    sys.exit(main())
