"""`globus-auto demo`: the newcomer's first command, end to end."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from globus_auto.cli.group import cli


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if p.is_file()
    }


def test_demo_shows_first_second_and_changed_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # proves no user state
    monkeypatch.delenv("GLOBUS_SDK_SERVICE_URL_TRANSFER", raising=False)
    result = CliRunner().invoke(cli, ["demo"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "sent 5 files" in out  # first run: everything
    assert "sent 0 files" in out and "nothing to do" in out  # second run
    assert "sent 1 file " in out  # third run: the changed file
    assert "identical to the source: yes" in out
    assert not (tmp_path / "home").exists()
    assert "GLOBUS_SDK_SERVICE_URL_TRANSFER" not in os.environ


def test_demo_with_src_only_reads_it_and_fills_dst(tmp_path: Path) -> None:
    src, dst = tmp_path / "mine", tmp_path / "copy"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_bytes(b"mine")
    (src / "sub" / "b.bin").write_bytes(os.urandom(1000))
    before = snapshot(src)
    result = CliRunner().invoke(cli, ["demo", "--src", str(src), "--dst", str(dst)])
    assert result.exit_code == 0, result.output
    assert snapshot(src) == before
    assert (dst / "a.txt").read_bytes() == b"mine"
    assert (dst / "sub" / "b.bin").read_bytes() == (src / "sub" / "b.bin").read_bytes()
