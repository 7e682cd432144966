"""EXCLUDE follows the gitignore rules, through the ``globus-auto`` command.

A table of patterns and the files of one tree they keep out: each row is a job
of one config (one source, a destination each). ``run --dry-run`` must list
exactly the files the row keeps; ``run`` against the emulator must have
them delivered, in one recursive task with filter rules when every
pattern is a bare name (a Globus rule matches names at any depth, as the
emulator does: tests/emulator/test_emulator_filters.py), else as a list of
files. Then the warnings for a pattern that matched nothing, and the refusal
of a set that excludes everything.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from emulator_fixtures import TestEmulator
from helpers_e2e import dst_data, src_data, write_config

from globus_auto.cli.group import cli
from globus_auto.emulator.documents import filtered_out
from globus_auto.engine.exclude import ExcludeRules
from globus_auto.engine.plan import name_only_patterns

TREE = [
    "top.txt",
    "x.tmp",
    "sub/x.tmp",
    "sub/deep/y.tmp",
    "cache/a",
    "sub/cache/b",
    "d/cache",  # a file named like the folders
    "build/out.o",
    "src/build",  # a file named like the folder
    "logs/keep.log",
    "logs/drop.log",
    "core.1",
    "sub/core.2",
    "core.x",
    ".hidden",
]
TMP = {"x.tmp", "sub/x.tmp", "sub/deep/y.tmp"}
LOGS = {"logs/keep.log", "logs/drop.log"}

# patterns, the files they keep out, whether they go as Globus filter rules
TABLE: list[tuple[list[str], set[str], bool]] = [
    (["cache"], {"cache/a", "sub/cache/b", "d/cache"}, True),  # any depth
    (["**/*.tmp"], TMP, True),  # '**/' includes the top level
    (["*.tmp"], TMP, True),
    (["/*.tmp"], {"x.tmp"}, False),  # '/' first: the top only
    (["sub/*.tmp"], {"sub/x.tmp"}, False),  # '*' stops at '/'
    (["sub/**/*.tmp"], {"sub/x.tmp", "sub/deep/y.tmp"}, False),  # '**' crosses
    (["build/"], {"build/out.o"}, False),  # folders only: src/build is a file
    (["logs/*", "!logs/keep.log"], {"logs/drop.log"}, False),  # '!' re-includes
    (["core.[0-9]", ".*"], {"core.1", "sub/core.2", ".hidden"}, True),
    (["/cache"], {"cache/a"}, False),
    # An excluded folder is not entered, so nothing in it comes back.
    (["cache/", "!cache/a"], {"cache/a", "sub/cache/b"}, False),
    (["*", "!*/", "!*.log"], set(TREE) - LOGS, False),
]


def put(root: Path, names: list[str]) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(name)


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def table_config(path: Path, emu: TestEmulator) -> Path:
    """One job per row of TABLE, all from the same source to /backup/jN."""
    jobs = [
        dict(
            name=f"j{i}",
            src_id=emu.src_id,
            src_dir="/data",
            src_local_dir=str(src_data(emu)),
            dst_id=emu.dst_id,
            dst_dir=f"/backup/j{i}",
            exclude=patterns,
        )
        for i, (patterns, _, _) in enumerate(TABLE)
    ]
    text = textwrap.dedent(f"""\
        CLIENT_ID = {emu.confidential_client_id!r}
        CLIENT_SECRET = {emu.confidential_client_secret!r}
        STATE_DIR = {str(path.parent / "state")!r}
        RECURSIVE_THRESHOLD = 0
        MAX_TASKS_IN_FLIGHT = 1
        TRANSFERS = {jobs!r}
        """)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    return path


def dry_run_lists(output: str) -> dict[str, set[str]]:
    """Each job's files, as ``run --dry-run`` prints them (before its total)."""
    found: dict[str, set[str]] = {}
    files: set[str] = set()
    for line in output.splitlines():
        total = re.match(r"(\S+): .* would be sent", line)
        if total:
            found[total.group(1)] = files
            files = set()
        elif line.startswith(("new ", "changed ")):
            files.add(line.split(maxsplit=2)[2])
    return found


def invoke(config: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config), *args])


def test_the_table_through_dry_run_and_the_emulator(
    globus_env: TestEmulator, tmp_path: Path
) -> None:
    emu = globus_env
    put(src_data(emu), TREE)
    config = table_config(tmp_path / "config.py", emu)

    dry = invoke(config, "run", "--dry-run")
    assert dry.exit_code == 0, dry.output
    listed = dry_run_lists(dry.stdout)
    expected = {f"j{i}": set(TREE) - out for i, (_, out, _) in enumerate(TABLE)}
    assert listed == expected
    # Only the re-include inside an excluded folder can never match anything.
    (warning,) = [line for line in dry.stderr.splitlines() if "matched nothing" in line]
    assert warning.startswith(
        "globus-auto: j10: warning: the EXCLUDE pattern '!cache/a'"
    )

    sent = invoke(config, "run")
    assert sent.exit_code == 0, sent.output
    assert emu.wait_idle(30)
    tasks = {t.options["label"].split()[-1]: t for t in emu.transfer.tasks.values()}
    for i, (patterns, _, as_rules) in enumerate(TABLE):
        job = f"j{i}"
        assert files_under(dst_data(emu) / job) == expected[job], patterns
        task = tasks[job]
        assert task.status == "SUCCEEDED"
        assert task.items[0].recursive is as_rules, patterns
        rules = [r["name"] for r in task.options.get("filter_rules") or []]
        assert rules == (list(name_only_patterns(patterns) or ()))


def globus_keeps_out(rules: tuple[str, ...], path: str, is_dir: bool) -> bool:
    """The emulator's answer (its documents.filtered_out) for one path of a
    recursive item: out when it or a folder above it is filtered out."""
    parts = path.split("/")
    as_rules = [{"method": "exclude", "name": name} for name in rules]
    return any(
        filtered_out(
            as_rules, part, "dir" if (n < len(parts) - 1 or is_dir) else "file"
        )
        for n, part in enumerate(parts)
    )


def gitignore_keeps_out(rules: ExcludeRules, path: str, is_dir: bool) -> bool:
    """The walk's answer: out when it or a folder above it is excluded."""
    parts = path.split("/")
    return any(
        rules("/".join(parts[: n + 1]).encode(), n < len(parts) - 1 or is_dir)
        for n in range(len(parts))
    )


@pytest.mark.parametrize(
    "patterns",
    [
        ["cache"],
        ["*.tmp", "**/core.[0-9]"],
        ["?.log", "f[!0-9]*"],
        ["*cache*", "x?z"],
        [".*", "*~"],
    ],
)
def test_bare_names_mean_the_same_to_globus_rules_as_to_gitignore(
    patterns: list[str],
) -> None:
    names = ["cache", "a.tmp", "core.1", "core.x", "x.log", "xy.log", "fa", "f1"]
    names += ["mycache2", "xyz", "x/z", ".git", "b~", "plain"]
    paths = [*names, *(f"d/{n}" for n in names), *(f"{n}/e/f" for n in names)]
    converted = name_only_patterns(patterns)
    assert converted is not None
    rules = ExcludeRules(patterns)
    for path in paths:
        for is_dir in (False, True):
            ours = gitignore_keeps_out(rules, path, is_dir)
            assert ours == globus_keeps_out(converted, path, is_dir), (path, is_dir)


ORACLE_PATTERNS = [
    *("cache", "**/*.tmp", "*.tmp", "/*.tmp", "sub/*.tmp", "sub/**/*.tmp"),
    *("build/", "logs/*", "!logs/keep.log", "core.[0-9]", ".*", "/cache"),
    *("cache/", "!cache/a", "*", "!*/", "!*.log", "dir/**", "!dir/keep", "sub"),
    *("!dir/*", "*/", "!a/", "a/**/c", "!sub/", "b", "!b/", "/a/b/", "**/"),
    *("!*.tmp", "deep/", "a[!x]b", "f[!0-9]*", "[!c]*", "?", "*[!a]", "!f*"),
    *("?/", "*~", "[a-c]*/", "!**/b/", "zz/"),
]
ORACLE_TREE = [
    *TREE,
    *("dir/keep", "dir/sub/f", "dir/x", "a/b/c", "a/q/b/c", "ayb/z", "axb"),
    *("f/g", "fa", "f1/h", "b~", "sub/zz/q"),
]


def walk_with(rules: ExcludeRules, root: Path, prefix: str = "") -> set[str]:
    """The files a walk keeps: excluded folders are not entered."""
    kept = set()
    for entry in os.scandir(root / prefix if prefix else root):
        path = prefix + entry.name
        if path == ".git" or rules(path.encode(), entry.is_dir()):
            continue
        if entry.is_dir():
            kept |= walk_with(rules, root, path + "/")
        else:
            kept.add(path)
    return kept


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git as the oracle")
def test_the_rules_agree_with_git_itself(tmp_path: Path) -> None:
    """git decides which untracked files its ignore rules keep out
    (``git ls-files --others --exclude-from``): random sets of patterns over
    one tree must leave exactly the files git leaves."""
    root = tmp_path / "tree"
    put(root, ORACLE_TREE)
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    rules_file = tmp_path / "patterns"
    choose = random.Random(16)
    for _ in range(300):
        patterns = choose.sample(ORACLE_PATTERNS, choose.randint(1, 4))
        rules_file.write_text("\n".join(patterns) + "\n")
        git = ["git", "-C", str(root), "ls-files", "--others"]
        listed = subprocess.run(
            [*git, f"--exclude-from={rules_file}"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert walk_with(ExcludeRules(patterns), root) == set(listed.stdout.split()), (
            patterns
        )


def test_the_rules_may_be_called_from_several_threads_at_once() -> None:
    """The parallel walk calls one ExcludeRules from its worker threads: each
    answer is the one a single thread gets, and every pattern that matched
    anything is recorded."""
    patterns = ["*.tmp", "cache/", "!keep.tmp", "never-there", "d[0-9]/x"]
    names = [*TREE, "keep.tmp", "x"]
    paths = [(f"d{i % 10}/{n}", i % 3 == 0) for i in range(3000) for n in names]
    alone = ExcludeRules(patterns)
    expected = [alone(p.encode(), d) for p, d in paths]
    shared = ExcludeRules(patterns)
    with ThreadPoolExecutor(max_workers=8) as pool:
        chunks = [paths[i::8] for i in range(8)]
        answers = pool.map(
            lambda chunk: [shared(p.encode(), d) for p, d in chunk], chunks
        )
        got = dict(zip(range(8), answers, strict=True))
    for i in range(8):
        assert got[i] == expected[i::8]
    assert shared.unmatched() == alone.unmatched() == ("never-there",)


@pytest.mark.parametrize(
    "patterns",
    [["a/b"], ["/cache"], ["build/"], ["x", "!y"], ["[^a]"], ["a\\*"], ["**"]],
)
def test_what_a_plain_exclude_rule_cannot_say_rules_out_recursion(
    patterns: list[str],
) -> None:
    assert name_only_patterns(patterns) is None


# --- warnings and refusals -----------------------------------------------------------


def test_check_and_dry_run_warn_about_a_pattern_that_matched_nothing(
    globus_env: TestEmulator, tmp_path: Path
) -> None:
    emu = globus_env
    put(src_data(emu), ["a.tmp", "sub/b.txt", "cache/c"])
    # "sub/*.txt" matches; "cache/c" is excluded with its folder, so "c" is
    # never reached; written for the old rules, "**/x.tmp" matches nothing.
    patterns = ["*.tmp", "sub/*.txt", "cache/", "c", "**/x.tmp"]
    config = write_config(tmp_path / "config.py", emu, EXCLUDE=patterns)

    dry = invoke(config, "run", "--dry-run")
    assert dry.exit_code == 0, dry.output
    warnings = [line for line in dry.stderr.splitlines() if "matched nothing" in line]
    assert [w.split("'")[1] for w in warnings] == ["c", "**/x.tmp"]
    assert warnings[0].startswith("globus-auto: default: warning: the EXCLUDE pattern")

    check = invoke(config, "check")
    lines = check.stdout.splitlines()
    flagged = [line for line in lines if line.startswith("! default: exclude:")]
    assert flagged == [
        f"! default: exclude: the EXCLUDE pattern {p!r} matched nothing under "
        f"{src_data(emu)}"
        for p in ("c", "**/x.tmp")
    ]
    assert "gitignore rules" in lines[lines.index(flagged[0]) + 1]


def test_every_pattern_matching_is_a_quiet_ok(
    globus_env: TestEmulator, tmp_path: Path
) -> None:
    put(src_data(globus_env), ["a.tmp", "b"])
    config = write_config(tmp_path / "config.py", globus_env, EXCLUDE=["*.tmp"])
    check = invoke(config, "check").stdout
    assert " default: exclude: every pattern of ('*.tmp',) matches\n" in check
    dry = invoke(config, "run", "--dry-run")
    assert dry.exit_code == 0 and dry.stderr == ""


@pytest.mark.parametrize("patterns", [["*"], ["**"], ["/*"], ["tmp", "*"]])
def test_a_set_that_excludes_everything_is_refused(
    globus_env: TestEmulator, tmp_path: Path, patterns: list[str]
) -> None:
    put(src_data(globus_env), ["a"])
    config = write_config(tmp_path / "config.py", globus_env, EXCLUDE=patterns)
    for args in (["run", "--dry-run"], ["check"]):
        result = invoke(config, *args)
        assert result.exit_code == 2
        assert f"EXCLUDE: {patterns!r} excludes every file and folder, so nothing " in (
            result.output
        )
