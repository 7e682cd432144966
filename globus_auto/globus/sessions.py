"""What collections' session policies ask of the login, kept until a login meets it.

A collection may require a login from a domain, as an identity, with MFA,
meeting a policy, or recent enough; Globus answers with
``authorization_parameters`` (502 ...LoginFailed, 403 AuthPolicyFailed). A run
that meets one keeps it in ``session_requirements.json`` in the state folder,
so that ``globus-auto login`` asks Globus for exactly that. No globus-sdk here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from globus_auto.files import read_json, write_private_json

if TYPE_CHECKING:
    from globus_auto.settings.model import Settings

SESSIONS_FILE = "session_requirements.json"


def session_requirements(settings: Settings) -> dict[str, dict[str, Any]]:
    """What collections' session policies asked of the login: id -> Globus's
    ``authorization_parameters``, kept until a login meets them."""
    data = read_json(settings.state_dir / SESSIONS_FILE)
    if not isinstance(data, dict):
        return {}
    return {str(k): v for k, v in data.items() if isinstance(v, dict)}


def remember_session_requirement(
    settings: Settings, collection: str | None, parameters: Mapping[str, Any]
) -> None:
    """Keep what a collection asked for, so ``globus-auto login`` asks Globus
    for exactly that."""
    known = session_requirements(settings)
    wanted = {k: v for k, v in parameters.items() if k != "required_scopes"}
    if known.get(collection or "") == wanted:
        return
    known[collection or ""] = wanted
    write_private_json(settings.state_dir / SESSIONS_FILE, known)


def forget_session_requirement(settings: Settings, collection: str) -> None:
    known = session_requirements(settings)
    if known.pop(collection, None) is not None:
        write_private_json(settings.state_dir / SESSIONS_FILE, known)


def describe_session(parameters: dict[str, Any]) -> str:
    """What a session requirement asks for, in words: "a login with an identity
    from example.org", "multi-factor authentication", ..."""
    wanted = []
    if domains := parameters.get("session_required_single_domain"):
        wanted.append(f"a login with an identity from {' or '.join(domains)}")
    if identities := parameters.get("session_required_identities"):
        wanted.append(f"a login as identity {' or '.join(identities)}")
    if parameters.get("session_required_mfa"):
        wanted.append("a login with multi-factor authentication (MFA)")
    if policies := parameters.get("session_required_policies"):
        if isinstance(policies, str):  # AuthPolicyFailed sends "id,id"
            policies = policies.split(",")
        wanted.append(f"a login that meets its policy {', '.join(policies)}")
    return " and ".join(wanted) or "a fresh login (the last one is too old for it)"


def merged_session(requirements: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """One set of login parameters that meets every requirement: the domains,
    identities and policies of all, MFA if any asks, and a fresh login."""
    merged: dict[str, Any] = {"prompt": "login"}
    messages = []
    for wanted in requirements:
        for key in (
            "session_required_single_domain",
            "session_required_identities",
            "session_required_policies",
        ):
            values = wanted.get(key) or []
            if isinstance(values, str):
                values = values.split(",")
            merged[key] = list(dict.fromkeys([*merged.get(key, []), *values]))
        if wanted.get("session_required_mfa"):
            merged["session_required_mfa"] = True
        if wanted.get("session_message"):
            messages.append(str(wanted["session_message"]))
    if messages:
        merged["session_message"] = "; ".join(dict.fromkeys(messages))
    return {k: v for k, v in merged.items() if v not in ([], None)}
