"""``globus-auto emulator``: run the local Globus test service from a shell."""

from __future__ import annotations

import signal
import sys
import threading
import uuid
from pathlib import Path
from types import FrameType

import click

from globus_auto.emulator.service import Emulator


def _parse_collection(value: str) -> tuple[str, Path]:
    cid, sep, path = value.partition("=")
    try:
        canonical = str(uuid.UUID(cid))
    except ValueError:
        raise click.BadParameter(
            f"'{cid}' is not a UUID", param_hint="--collection"
        ) from None
    if not sep or not path:
        raise click.BadParameter("expected UUID=PATH", param_hint="--collection")
    root = Path(path).expanduser()
    if not root.is_dir():
        raise click.BadParameter(
            f"'{path}' is not a directory", param_hint="--collection"
        )
    return canonical, root


def _parse_client(value: str) -> tuple[str, str | None]:
    cid, sep, secret = value.partition(":")
    try:
        canonical = str(uuid.UUID(cid))
    except ValueError:
        raise click.BadParameter(
            f"'{cid}' is not a UUID", param_hint="--client"
        ) from None
    if sep and not secret:
        raise click.BadParameter("empty secret", param_hint="--client")
    return canonical, secret or None


CONTROLS_HELP = """\
Run a local TEST service that imitates the Globus Transfer and Auth APIs, with
local directories as collections. It is not Globus and moves no data off this
machine. Point globus-sdk at it with GLOBUS_SDK_SERVICE_URL_TRANSFER and
GLOBUS_SDK_SERVICE_URL_AUTH set to the printed URL. A client given without a
secret is a native app (login with PKCE); one with a secret is a confidential
client (client credentials). Serves until SIGINT or SIGTERM.

Test controls (JSON bodies; never part of Globus), each also a method of
globus_auto.emulator.Emulator:

\b
  POST /_emulator/collections/<id>   set_collection(): connected, paused,
       entity_type, high_assurance, display_name,
       requires_consent (null: the entity type decides), and the session
       policy: session_required_single_domain [domains],
       session_required_mfa, session_max_age (seconds),
       session_required_policies [ids] (null clears one)
  POST /_emulator/tasks/<id>         set_task_status(): {"status":
       "INACTIVE"|"ACTIVE", "nice_status": ...} pauses / resumes a task
  GET  /_emulator/tasks/<id>         task_options(): what it was submitted
       with, notify_on_* included
  POST /_emulator/limits             set_limits(): task_deadline_seconds
       (default 86400), retry_seconds (60), ls_size_limit (100000),
       skipped_errors_page (100), cancel_seconds (0: how long a
       cancelled task takes to stop); GET shows them
  POST /_emulator/identities         add_identity(): {"username":
       "name@domain"} links an identity to the person who logs in
  POST /_emulator/faults             add_faults(): fail_tasks, http_status,
       path_prefix, count, bytes_per_second
  POST /_emulator/auth               auth_control(): expire_access_tokens,
       expire_refresh_tokens, revoke_all, age_sessions (seconds)
  GET  /_emulator/stats              stats(): requests, tasks, bytes,
       notification_mails {succeeded, failed, inactive}
"""


@click.command("emulator", help=CONTROLS_HELP)
@click.option(
    "--collection",
    "collections",
    multiple=True,
    metavar="UUID=PATH",
    help="A collection id and the local directory it serves (repeatable).",
)
@click.option(
    "--client",
    "clients",
    multiple=True,
    metavar="ID[:SECRET]",
    help="A client id, with a secret for a confidential client (repeatable).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option(
    "--port", default=0, show_default=True, type=int, help="Port (0: any free)."
)
def emulator_command(
    collections: tuple[str, ...], clients: tuple[str, ...], host: str, port: int
) -> None:
    parsed_collections = dict(_parse_collection(c) for c in collections)
    parsed_clients = dict(_parse_client(c) for c in clients)
    emu = Emulator(
        collections=dict(parsed_collections),
        clients=parsed_clients,
        host=host,
        port=port,
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {
        sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        emu.start()
        click.echo(f"listening on {emu.url.rstrip('/')}")
        sys.stdout.flush()
        while not stop.wait(0.5):
            pass
    finally:
        emu.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
