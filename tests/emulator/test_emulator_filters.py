"""The emulator applies ``filter_rules`` the way the Globus Transfer API does.

Rules are built with globus-sdk's ``TransferData.add_filter_rule`` and sent
through its ``TransferClient``. As documented (docs.globus.org/api/transfer/
task_submit, and the SDK's docstring): each item found while traversing a
recursive item is matched by *name* against the rules in order; the first
match's method applies; ``type`` limits a rule to files or directories; no
match means included; an excluded directory is not descended. The last test
runs the ``globus-auto`` command itself with EXCLUDE over a recursive task.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import globus_sdk
import pytest
from click.testing import CliRunner
from emulator_fixtures import TestEmulator, managed
from helpers_e2e import write_config

from globus_auto.cli.group import cli

TRANSFER_SCOPE = "urn:globus:auth:scope:transfer.api.globus.org:all"
Rule = tuple[str, Literal["include", "exclude"], Literal["file", "dir"] | None]


@pytest.fixture
def tc(globus_env: TestEmulator) -> Iterator[globus_sdk.TransferClient]:
    """A TransferClient of the emulator's confidential client, with consents."""
    emu = globus_env
    scope = (
        f"{TRANSFER_SCOPE}[*https://auth.globus.org/scopes/{emu.src_id}/data_access"
        f" *https://auth.globus.org/scopes/{emu.dst_id}/data_access]"
    )
    auth = globus_sdk.ConfidentialAppAuthClient(
        emu.confidential_client_id, emu.confidential_client_secret
    )
    authorizer = globus_sdk.ClientCredentialsAuthorizer(auth, scope)
    with managed(
        globus_sdk.TransferClient(
            authorizer=authorizer,
            retry_config=globus_sdk.transport.RetryConfig(max_retries=0),
        )
    ) as client:
        yield client


def put(root: Path, names: list[str]) -> None:
    """Create each relative file name under ``root``, its content its name."""
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(name)


def files_under(root: Path) -> set[str]:
    """The relative paths of the regular files under ``root``."""
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def filtered_copy(
    tc: globus_sdk.TransferClient,
    emu: TestEmulator,
    rules: list[Rule],
    *,
    recursive: bool = True,
    source: str = "/tree",
    destination: str = "/out",
) -> dict[str, Any]:
    """Submit one item with ``rules``, wait, return the final task document."""
    tdata = globus_sdk.TransferData(emu.src_id, emu.dst_id)
    tdata.add_item(source, destination, recursive=recursive)
    for name, method, kind in rules:
        if kind is None:
            tdata.add_filter_rule(name, method=method)
        else:
            tdata.add_filter_rule(name, method=method, type=kind)
    task_id = tc.submit_transfer(tdata)["task_id"]
    assert emu.wait_idle(10)
    task = dict(tc.get_task(task_id).data)
    assert task["status"] == "SUCCEEDED", task
    return task


def delivered(emu: TestEmulator) -> set[str]:
    return files_under(emu.dst_root / "out")


# ------------------------------------------------------------- semantics


def test_the_sdk_docstring_examples(
    globus_env: TestEmulator, tc: globus_sdk.TransferClient
) -> None:
    emu = globus_env
    put(emu.src_root / "tree", ["a.tgz", "b.tar.gz", "c.txt", "sub/d.tgz", "sub/e"])
    filtered_copy(
        tc, emu, [("*.tgz", "exclude", "file"), ("*.tar.gz", "exclude", "file")]
    )
    assert delivered(emu) == {"c.txt", "sub/e"}
    put(emu.src_root / "tree", ["sub/f.txt"])
    (emu.dst_root / "out").rename(emu.dst_root / "first")
    task = filtered_copy(
        tc, emu, [("*.txt", "include", "file"), ("*", "exclude", "file")]
    )
    # "exclude * type file" leaves directories alone, so sub/ is still walked.
    assert delivered(emu) == {"c.txt", "sub/f.txt"}
    assert task["files"] == 2 and task["files_transferred"] == 2
    assert task["filter_rules"] == [
        {
            "DATA_TYPE": "filter_rule",
            "method": "include",
            "name": "*.txt",
            "type": "file",
        },
        {"DATA_TYPE": "filter_rule", "method": "exclude", "name": "*", "type": "file"},
    ]


def test_first_matching_rule_wins_and_no_match_includes(
    globus_env: TestEmulator, tc: globus_sdk.TransferClient
) -> None:
    emu = globus_env
    put(emu.src_root / "tree", ["keep.tmp", "drop.tmp", "plain", "sub/keep.tmp"])
    filtered_copy(tc, emu, [("keep.tmp", "include", None), ("*.tmp", "exclude", None)])
    assert delivered(emu) == {"keep.tmp", "plain", "sub/keep.tmp"}


def test_later_include_does_not_override_an_earlier_exclude(
    globus_env: TestEmulator, tc: globus_sdk.TransferClient
) -> None:
    emu = globus_env
    put(emu.src_root / "tree", ["keep.tmp", "other"])
    filtered_copy(tc, emu, [("*.tmp", "exclude", None), ("keep.tmp", "include", None)])
    assert delivered(emu) == {"other"}


def test_type_limits_a_rule_to_files_or_directories(
    globus_env: TestEmulator, tc: globus_sdk.TransferClient
) -> None:
    emu = globus_env
    put(emu.src_root / "tree", ["cache/x", "d/cache", "d/y"])
    filtered_copy(tc, emu, [("cache", "exclude", "dir")])
    assert delivered(emu) == {"d/cache", "d/y"}
    (emu.dst_root / "out").rename(emu.dst_root / "first")
    filtered_copy(tc, emu, [("cache", "exclude", "file")])
    assert delivered(emu) == {"cache/x", "d/y"}
    (emu.dst_root / "out").rename(emu.dst_root / "second")
    filtered_copy(tc, emu, [("cache", "exclude", None)])
    assert delivered(emu) == {"d/y"}


def test_an_excluded_directory_is_not_descended(
    globus_env: TestEmulator, tc: globus_sdk.TransferClient
) -> None:
    emu = globus_env
    put(emu.src_root / "tree", ["skip/a.txt", "skip/deep/b.txt", "c.txt"])
    task = filtered_copy(
        tc, emu, [("*.txt", "include", "file"), ("skip", "exclude", "dir")]
    )
    assert delivered(emu) == {"c.txt"}
    assert not (emu.dst_root / "out" / "skip").exists()
    assert task["directories"] == 1  # only the item's own directory


def test_rules_match_names_at_every_depth_never_paths(
    globus_env: TestEmulator, tc: globus_sdk.TransferClient
) -> None:
    emu = globus_env
    put(emu.src_root / "tree", ["x.log", "a/x.log", "a/b/x.log", "a/b/y"])
    filtered_copy(tc, emu, [("a/b", "exclude", None), ("a/x.log", "exclude", None)])
    assert delivered(emu) == {"x.log", "a/x.log", "a/b/x.log", "a/b/y"}
    (emu.dst_root / "out").rename(emu.dst_root / "first")
    filtered_copy(tc, emu, [("x.log", "exclude", None)])
    assert delivered(emu) == {"a/b/y"}


def test_wildcards_question_mark_and_character_groups(
    globus_env: TestEmulator, tc: globus_sdk.TransferClient
) -> None:
    emu = globus_env
    put(emu.src_root / "tree", ["f1", "f2", "f3", "fa", "f10", "g1", ".hidden"])
    filtered_copy(tc, emu, [("f[12]", "exclude", None), ("?a", "exclude", None)])
    assert delivered(emu) == {"f3", "f10", "g1", ".hidden"}
    (emu.dst_root / "out").rename(emu.dst_root / "first")
    filtered_copy(tc, emu, [("f[!1]", "exclude", None), ("*", "include", "dir")])
    assert delivered(emu) == {"f1", "f10", "g1", ".hidden"}
    (emu.dst_root / "out").rename(emu.dst_root / "second")
    filtered_copy(tc, emu, [("*", "exclude", None)])  # '*' matches dot names too
    assert delivered(emu) == set()


def test_the_items_own_paths_are_not_filtered(
    globus_env: TestEmulator, tc: globus_sdk.TransferClient
) -> None:
    emu = globus_env
    put(emu.src_root / "tree", ["inner.tmp", "kept"])
    put(emu.src_root, ["single.tmp"])
    filtered_copy(tc, emu, [("tree", "exclude", None), ("*.tmp", "exclude", None)])
    assert delivered(emu) == {"kept"}
    filtered_copy(
        tc,
        emu,
        [("*.tmp", "exclude", None)],
        recursive=False,
        source="/single.tmp",
        destination="/single.tmp",
    )
    assert (emu.dst_root / "single.tmp").read_text() == "single.tmp"


# ------------------------------------------------------------ validation


def submit_error(
    tc: globus_sdk.TransferClient, emu: TestEmulator, rules: Any
) -> globus_sdk.TransferAPIError:
    tdata = globus_sdk.TransferData(emu.src_id, emu.dst_id)
    tdata.add_item("/tree", "/out", recursive=True)
    tdata["filter_rules"] = rules
    with pytest.raises(globus_sdk.TransferAPIError) as caught:
        tc.submit_transfer(tdata)
    return caught.value


GOOD = {"DATA_TYPE": "filter_rule", "method": "exclude", "name": "*.tmp"}


@pytest.mark.parametrize(
    ("rules", "complaint"),
    [
        ("*.tmp", "must be a list"),
        (["*.tmp"], "filter_rules[0]: must be a filter_rule object"),
        ([GOOD, {**GOOD, "DATA_TYPE": None}], "filter_rules[1]: DATA_TYPE"),
        ([{k: v for k, v in GOOD.items() if k != "DATA_TYPE"}], "DATA_TYPE"),
        ([{**GOOD, "DATA_TYPE": "transfer_item"}], "DATA_TYPE"),
        ([{**GOOD, "method": "skip"}], "method"),
        ([{k: v for k, v in GOOD.items() if k != "method"}], "method"),
        ([{k: v for k, v in GOOD.items() if k != "name"}], "name"),
        ([{**GOOD, "name": ""}], "name"),
        ([{**GOOD, "name": 3}], "name"),
        ([{**GOOD, "type": "symlink"}], "type"),
        ([{**GOOD, "path": "/x"}], "unknown field(s) path"),
    ],
)
def test_bad_filter_rules_get_a_globus_400(
    globus_env: TestEmulator,
    tc: globus_sdk.TransferClient,
    rules: Any,
    complaint: str,
) -> None:
    err = submit_error(tc, globus_env, rules)
    assert (err.http_status, err.code) == (400, "ClientError.BadRequest")
    assert complaint in str(err.message)
    assert err.request_id
    assert globus_env.stats()["tasks_submitted"] == 0


def test_a_rule_without_type_or_with_null_type_applies_to_both(
    globus_env: TestEmulator, tc: globus_sdk.TransferClient
) -> None:
    emu = globus_env
    put(emu.src_root / "tree", ["t/x", "t2", "u"])
    tdata = globus_sdk.TransferData(emu.src_id, emu.dst_id)
    tdata.add_item("/tree", "/out", recursive=True)
    tdata["filter_rules"] = [
        {**GOOD, "name": "t"},
        {**GOOD, "name": "t2", "type": None},
    ]
    tc.submit_transfer(tdata)
    assert emu.wait_idle(10)
    assert delivered(emu) == {"u"}


# ------------------------------------------------------------ end to end


def test_globus_auto_exclude_name_suffixes_go_as_filter_rules(
    globus_env: TestEmulator, tmp_path: Path
) -> None:
    emu = globus_env
    src, dst = emu.src_root / "data", emu.dst_root / "backup"
    put(src, ["a.tmp", "d/b.tmp", "keep.txt", "d/e.txt", "d/f/g.bin"])
    config = write_config(
        tmp_path / "config.py", emu, EXCLUDE=["*.tmp"], RECURSIVE_THRESHOLD=2
    )
    result = CliRunner().invoke(cli, ["--config", str(config), "run", "--wait"])
    assert result.exit_code == 0, result.output
    (task,) = emu.transfer.tasks.values()  # one task, the whole tree, recursive
    assert task.status == "SUCCEEDED" and task.items[0].recursive
    assert [r["name"] for r in task.options["filter_rules"]] == ["*.tmp"]
    assert files_under(dst) == {"keep.txt", "d/e.txt", "d/f/g.bin"}


def test_globus_auto_exclude_paths_never_become_filter_rules(
    globus_env: TestEmulator, tmp_path: Path
) -> None:
    """'/cache' means the top-level cache/ only; as a filter rule it would also
    drop d/cache/y, which would then be settled as delivered without being sent."""
    emu = globus_env
    src, dst = emu.src_root / "data", emu.dst_root / "backup"
    put(src, ["a.tmp", "cache/x", "d/cache/y", "keep.txt", "d/e.txt", "d/f/g.bin"])
    config = write_config(
        tmp_path / "config.py", emu, EXCLUDE=["*.tmp", "/cache"], RECURSIVE_THRESHOLD=2
    )
    result = CliRunner().invoke(cli, ["--config", str(config), "run", "--wait"])
    assert result.exit_code == 0, result.output
    (task,) = emu.transfer.tasks.values()
    assert task.status == "SUCCEEDED" and not task.items[0].recursive
    assert files_under(dst) == {"d/cache/y", "keep.txt", "d/e.txt", "d/f/g.bin"}


def test_globus_auto_bare_names_match_at_any_depth_as_filter_rules_do(
    globus_env: TestEmulator, tmp_path: Path
) -> None:
    """A bare name ('cache') and a '**/' one match at every depth, as gitignore
    and a Globus filter rule both do, so they go as rules of a recursive task."""
    emu = globus_env
    src, dst = emu.src_root / "data", emu.dst_root / "backup"
    put(src, ["a.tmp", "cache/x", "d/cache/y", "keep.txt", "d/e.txt", "d/f/g.bin"])
    config = write_config(
        tmp_path / "config.py",
        emu,
        EXCLUDE=["**/*.tmp", "cache"],
        RECURSIVE_THRESHOLD=2,
    )
    result = CliRunner().invoke(cli, ["--config", str(config), "run", "--wait"])
    assert result.exit_code == 0, result.output
    (task,) = emu.transfer.tasks.values()
    assert task.status == "SUCCEEDED" and task.items[0].recursive
    assert [r["name"] for r in task.options["filter_rules"]] == ["*.tmp", "cache"]
    assert files_under(dst) == {"keep.txt", "d/e.txt", "d/f/g.bin"}
