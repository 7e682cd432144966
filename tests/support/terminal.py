"""Running the ``globus-auto`` command on a pseudo-terminal (Python's ``pty``),
as a person at a terminal would: stdin, stdout and stderr are the terminal, so
the command shows what it shows people (progress, prompts, summaries)."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from helpers_e2e import cli_command

CLEAR_LINE = "\r\x1b[K"


def run_on_terminal(
    config: Path,
    args: Sequence[str],
    env: dict[str, str],
    timeout: float = 60,
    typed: bytes = b"",
) -> tuple[int, str]:
    """Run the command with a pseudo-terminal as stdin, stdout and stderr,
    ``typed`` typed into it; its exit code and everything it wrote (newlines
    as written, not CRLF)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        cli_command(config, args),
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env={**env, "COLUMNS": "250", "TERM": "xterm"},
    )
    os.close(slave)
    if typed:
        os.write(master, typed)  # the terminal keeps it until it is read
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout  # a guard against a hang, no assertion
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every writer closed the terminal
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
    code = proc.wait(timeout=10)
    return code, b"".join(chunks).decode().replace("\r\n", "\n")
