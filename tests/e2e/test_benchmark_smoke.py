"""The benchmark script still works: its smoke version prints all five figures.

The figures themselves are not checked here (they mean something only at full
size, on a quiet machine); see benchmarks/README.md.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "run.py"


def test_smoke_benchmark_prints_the_five_figures(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    figures = re.findall(r"^figure (\d): (.+?) \(target <= ", result.stdout, re.M)
    assert [number for number, _ in figures] == ["1", "2", "3", "4", "5"]
    assert "globus-sdk imported: no" in result.stdout
    # The scan read exactly the bytes that changed, and no other file.
    found = re.search(
        r"read (\d+) files, ([\d,]+) bytes from the source for ([\d,]+) bytes",
        result.stdout,
    )
    assert found is not None, result.stdout
    assert found.group(1) == "10"
    assert found.group(2) == found.group(3)
    assert list(tmp_path.iterdir()) == []  # the work folder is removed
