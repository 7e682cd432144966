"""The emulated person's identities, and the identities of confidential clients.

One person uses the emulator. Their primary identity is ``TEST_IDENTITY``;
tests (or a login asked for an identity of another domain) link more, as a
person links institutional accounts to their Globus account. Every linked
identity is in the person's identity set (userinfo, id_token, introspect),
and a login can add it to the session (``sessions.LoginSession``).
"""

from __future__ import annotations

import time
import uuid

from globus_auto.emulator.server import JSONDict
from globus_auto.emulator.sessions import LoginSession, domain_of

TEST_IDENTITY: JSONDict = {
    "id": "5b0b4d3f-7c7a-4f6e-9a55-2f3b1c0e6a01",
    "username": "emulated-user@globusid.org",
    "name": "Emulated User",
    "email": "emulated-user@example.org",
    "organization": "globus-auto emulator",
    "identity_provider": "41143743-f3c8-4d60-bbdb-eeecaba85bd9",
    "identity_provider_display_name": "Globus ID",
    "identity_type": "login",
    "status": "used",
}
CLIENT_IDP = "1fc1b1ac-3a1c-4cc1-8b88-b2c1a8e7b3a9"
IDENTITY_FIELDS = (
    "email",
    "id",
    "identity_provider",
    "identity_type",
    "name",
    "organization",
    "status",
    "username",
)


def linked_identity(username: str) -> JSONDict:
    """A linked identity document for ``username`` (``someone@domain``).

    Ids are derived from the username, so the same name always gives the
    same identity; each domain gets its own identity provider, as an
    institution's login does.
    """
    domain = domain_of(username)
    return {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"identity:{username.lower()}")),
        "username": username.lower(),
        "name": TEST_IDENTITY["name"],
        "email": username.lower(),
        "organization": domain,
        "identity_provider": str(uuid.uuid5(uuid.NAMESPACE_DNS, domain)),
        "identity_provider_display_name": domain,
        "identity_type": "login",
        "status": "used",
    }


def client_identity(client_id: str) -> JSONDict:
    """A confidential client acts as its own identity (id = client id)."""
    return {
        "id": client_id,
        "username": f"{client_id}@clients.auth.globus.org",
        "name": f"emulator client {client_id}",
        "email": None,
        "organization": None,
        "identity_provider": CLIENT_IDP,
        "identity_provider_display_name": "Globus Auth Clients",
        "identity_type": "client",
        "status": "used",
    }


def identity_set_entry(identity: JSONDict) -> JSONDict:
    """An ``identity_set`` entry of userinfo and the id_token."""
    return {
        "sub": identity["id"],
        "username": identity["username"],
        "name": identity.get("name"),
        "email": identity.get("email"),
        "organization": identity.get("organization"),
        "identity_provider": identity["identity_provider"],
        "identity_provider_display_name": identity.get(
            "identity_provider_display_name"
        ),
        "last_authentication": int(time.time()),
    }


class PersonIdentities:
    """The person's primary identity and the identities linked to it."""

    def __init__(self) -> None:
        self.primary: JSONDict = dict(TEST_IDENTITY)
        self.linked: list[JSONDict] = []

    def all(self) -> list[JSONDict]:
        return [self.primary, *self.linked]

    def ids(self) -> set[str]:
        return {identity["id"] for identity in self.all()}

    def link(self, username: str) -> JSONDict:
        """Link (once) an identity of ``username``; return its document."""
        if "@" not in username or not domain_of(username):
            raise ValueError(f"username {username!r} must be name@domain")
        found = self.by_username(username)
        if found is not None:
            return found
        identity = linked_identity(username)
        self.linked.append(identity)
        return identity

    def by_username(self, username: str) -> JSONDict | None:
        for identity in self.all():
            if identity["username"] == username.lower():
                return identity
        return None

    def by_id(self, identity_id: str) -> JSONDict | None:
        for identity in self.all():
            if identity["id"] == identity_id.lower():
                return identity
        return None

    def in_domain(self, domain: str) -> JSONDict | None:
        for identity in self.all():
            if domain_of(identity["username"]) == domain.lower():
                return identity
        return None

    def for_domain(self, domain: str) -> JSONDict:
        """The person's identity in ``domain``, linking ``<name>@<domain>`` if
        they have none: a person asked to log in with an institution's account
        does so, and Globus links it (unverified in detail)."""
        found = self.in_domain(domain)
        if found is not None:
            return found
        local = self.primary["username"].partition("@")[0]
        return self.link(f"{local}@{domain.lower()}")


def log_in(
    person: PersonIdentities,
    session: LoginSession | None,
    *,
    domains: list[str],
    identities: list[str],
    mfa: bool,
    prompt_login: bool,
    policies: list[str],
) -> LoginSession:
    """The person's session after an authorize page with these parameters.

    As a browser with a Globus session does, an existing session is reused:
    no parameter means no new authentication (today's behaviour).

    - ``domains`` (session_required_single_domain): an identity of one of them
      must be in the session; if none is, the person logs in with (and links)
      one of the first domain.
    - ``identities`` (session_required_identities): ids of linked identities
      or usernames (linked if new); each is logged in if not in the session.
    - ``mfa`` (session_required_mfa): the identities logged in now use MFA.
    - ``prompt_login`` (prompt=login): they authenticate afresh.
    - ``policies`` (session_required_policies): the login satisfied them; the
      emulator does not model a policy's content.

    Raises ValueError for an identity id the person does not have.
    """
    session = session.snapshot() if session else LoginSession()
    if not session.authentications:
        session.authenticate(person.primary)
    targets: list[JSONDict] = []
    if domains and not session.in_domains(domains):
        targets.append(person.for_domain(domains[0]))
    elif domains:
        first = session.in_domains(domains)[0]
        targets.append(person.by_id(first.identity_id) or person.primary)
    for wanted in identities:
        found = person.link(wanted) if "@" in wanted else person.by_id(wanted)
        if found is None:
            raise ValueError(f"identity '{wanted}' is not linked to this account")
        targets.append(found)
    if not targets:
        targets.append(person.primary)
    for identity in targets:
        current = session.authentications.get(identity["id"])
        if current is None or prompt_login or (mfa and not current.mfa):
            session.authenticate(identity, mfa=mfa)
    session.policies.update(policies)
    return session
