"""``globus-auto demo``: the real code path against a local Globus service.

Starts the emulator in this process with two collections in temporary folders
(or the folders given), then runs the same code a cron run does: a first run
sends everything, a second sends nothing, a changed file is sent again. It uses
its own temporary state folder and never reads the user's config or state.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from globus_auto.engine.report import JobReport, RunOptions
from globus_auto.errors import EXIT_CODES_HELP
from globus_auto.settings.model import Job, Settings, SmtpSettings
from globus_auto.text import counted

if TYPE_CHECKING:
    from globus_auto.engine.report import JobReport
    from globus_auto.settings.model import Settings

log = logging.getLogger(__name__)


Echo = Callable[[str], None]

SAMPLE_FILES = {
    "README.txt": b"Sample data written by globus-auto demo.\n",
    "run-001/detector.dat": bytes(range(256)) * 512,
    "run-001/metadata.json": b'{"run": 1, "sample": "demo"}\n',
    "run-002/detector.dat": bytes(reversed(range(256))) * 1024,
    "run-002/notes/observations.txt": b"Everything nominal.\n",
}


@contextmanager
def _service_urls(url: str) -> Iterator[None]:
    """Point globus-sdk at ``url`` for the body only."""
    names = ("GLOBUS_SDK_SERVICE_URL_TRANSFER", "GLOBUS_SDK_SERVICE_URL_AUTH")
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update(dict.fromkeys(names, url))
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _write_sample(root: Path) -> None:
    for name, content in SAMPLE_FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def run_demo(src: Path | None, dst: Path | None, echo: Echo) -> None:
    """Run the three demo steps and print what happened."""
    from globus_auto.emulator import Emulator
    from globus_auto.engine.session import run_session

    with tempfile.TemporaryDirectory(prefix="globus-auto-demo-") as tmp:
        work = Path(tmp)
        # The demo changes a file in its source: it works on a copy of --src,
        # so the user's folder is only read.
        src_root = work / "source"
        if src is None:
            _write_sample(src_root)
        else:
            shutil.copytree(src, src_root, symlinks=True)
        dst_root = (dst or work / "destination").absolute()
        dst_root.mkdir(parents=True, exist_ok=True)
        src_id, dst_id, client_id = (str(uuid.uuid4()) for _ in range(3))
        secret = uuid.uuid4().hex
        emulator = Emulator(
            collections={src_id: src_root, dst_id: dst_root},
            clients={client_id: secret},
        )
        emulator.start()
        try:
            with _service_urls(emulator.url):
                settings = _demo_settings(
                    work, src_root, src_id, dst_id, client_id, secret
                )
                _steps(settings, src_root, dst_root, src is None, echo, run_session)
        finally:
            emulator.stop()
        echo("")
        echo("Next: `globus-auto init` writes a config to fill in with your")
        echo("collections and client id; then `globus-auto check` and")
        echo("`globus-auto cron` (see the README).")


def _demo_settings(
    work: Path, src_root: Path, src_id: str, dst_id: str, client_id: str, secret: str
) -> Settings:
    job = Job(
        name="demo",
        src_id=src_id,
        src_dir="/",
        src_local_dir=src_root,
        dst_id=dst_id,
        dst_dir="/",
    )
    return Settings(
        config_path=work / "config.py",
        client_id=client_id,
        client_secret=secret,
        state_dir=work / "state",
        email_sender=None,
        smtp=SmtpSettings(),
        jobs=(job,),
    )


def _steps(
    settings: Settings,
    src_root: Path,
    dst_root: Path,
    sample: bool,
    echo: Echo,
    run_session: Callable[..., list[JobReport]],
) -> None:
    opts = RunOptions(wait=True, timeout=120)

    def one_run(title: str) -> None:
        echo(f"\n== {title}")
        (report,) = run_session(settings, settings.jobs, opts)
        scanned = report.scan.files if report.scan else 0
        echo(
            f"   scanned {counted(scanned, 'file')}; sent "
            f"{counted(report.files_sent, 'file')} "
            f"({counted(report.bytes_sent, 'byte')}); {report.outcome}"
        )
        for problem in report.problems:
            echo(f"   problem: {problem.what_happened}")

    echo("globus-auto demo: a local Globus service with two collections")
    echo(f"   source      {src_root}" + ("" if sample else " (a copy of --src)"))
    echo(f"   destination {dst_root}")
    echo(f"   state       {settings.state_dir} (temporary)")
    one_run("First run: everything is new, so everything is sent")
    echo(f"   destination now holds {len(_tree(dst_root))} files")
    one_run("Second run: nothing changed, so nothing is sent (no call to Globus)")
    changed = src_root / ("run-001/metadata.json" if sample else "globus-auto-demo.txt")
    with open(changed, "ab") as handle:
        handle.write(b'{"edited": true}\n')
    echo(f"\n   (appended a line to {changed.relative_to(src_root)})")
    one_run("Third run: only the changed file is sent")
    same = (
        dst_root / changed.relative_to(src_root)
    ).read_bytes() == changed.read_bytes()
    echo(f"   destination copy identical to the source: {'yes' if same else 'NO'}")


@click.command(
    "demo", epilog="Example: globus-auto demo --src ./mydata\n\n" + EXIT_CODES_HELP
)
@click.option(
    "--src",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="A folder whose copy is the source (yours is only read; else sample data).",
)
@click.option(
    "--dst",
    type=click.Path(file_okay=False, path_type=Path),
    help="A folder to use as the destination collection (else a temporary one).",
)
def demo_command(src: Path | None, dst: Path | None) -> None:
    """Watch the real code path work against a local Globus service.

    Needs no Globus account and touches neither your config nor your state.
    """
    run_demo(src, dst, click.echo)
