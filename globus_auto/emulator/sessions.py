"""Login sessions, and the collection authentication policies they must meet.

A token carries the login session it came from: which identities were
authenticated, when, and whether with MFA, plus the Auth policy ids the login
satisfied. A collection's policy (``Collection.session_*``) is checked by
Transfer on ls, mkdir and transfer submission; the error documents follow the
real ones quoted in /tmp/research12.md section 3:

- a domain, MFA or session-age requirement: 502
  ``ExternalError.<Operation>.LoginFailed`` with a top-level
  ``authorization_parameters`` (globus-sdk-javascript
  ``src/core/__tests__/errors.spec.ts`` TRANSFER_AUTHORIZATION_REQUIREMENTS_ERROR;
  globus-sdk docs ``handling_transfer_auth_params``, status 502 from ls);
- required policy ids, and any requirement met at submission: 403
  ``AuthPolicyFailed``, policies as one comma-separated string (globus-cli
  ``tests/functional/exception_handling/test_session_hooks.py``).
"""

from __future__ import annotations

import copy
import time
import uuid
from dataclasses import dataclass, field

from globus_auto.emulator.server import GlobusError, JSONDict
from globus_auto.emulator.state import Collection

LOGIN_FAILED_MESSAGE = "Session reauthentication required (Globus Transfer)"
POLICY_FAILED_MESSAGE = "Failing collection authentication policy"


def domain_of(username: str) -> str:
    """The domain of an identity: what follows the last ``@`` of its username."""
    return username.rpartition("@")[2].lower()


@dataclass
class Authentication:
    """One identity's authentication in a login session."""

    identity_id: str
    username: str
    auth_time: float
    mfa: bool = False

    @property
    def domain(self) -> str:
        return domain_of(self.username)


@dataclass
class LoginSession:
    """What a login established. Tokens hold a copy taken when issued; a
    refreshed token keeps the session of the token it replaces (unverified:
    Globus does not document it, and re-logging in is what renews a session)."""

    authentications: dict[str, Authentication] = field(default_factory=dict)
    policies: set[str] = field(default_factory=set)
    session_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def snapshot(self) -> LoginSession:
        return copy.deepcopy(self)

    def authenticate(self, identity: JSONDict, *, mfa: bool = False) -> None:
        """(Re)authenticate ``identity`` now; MFA once given is kept."""
        previous = self.authentications.get(identity["id"])
        self.authentications[identity["id"]] = Authentication(
            identity_id=identity["id"],
            username=identity["username"],
            auth_time=time.time(),
            mfa=mfa or (previous.mfa if previous else False),
        )

    def in_domains(self, domains: list[str]) -> list[Authentication]:
        wanted = {d.lower() for d in domains}
        return [a for a in self.authentications.values() if a.domain in wanted]


@dataclass
class LoginVerdict:
    """Why a session fails a collection's domain / MFA / age requirements."""

    domain: bool = False  # no identity of a required domain in the session
    mfa: bool = False  # such identities, but none authenticated with MFA
    stale: bool = False  # otherwise fine, but authenticated too long ago

    def __bool__(self) -> bool:
        return self.domain or self.mfa or self.stale


def login_verdict(
    collection: Collection, session: LoginSession, now: float
) -> LoginVerdict:
    """Check the requirements against one identity at a time: the identity that
    meets the domain must also meet MFA and age (a policy is about the identity
    that reaches the storage; unverified)."""
    domains = collection.session_required_single_domain
    candidates = list(
        session.in_domains(domains) if domains else session.authentications.values()
    )
    if domains and not candidates:
        return LoginVerdict(domain=True)
    if collection.session_required_mfa:
        candidates = [a for a in candidates if a.mfa]
        if not candidates:
            return LoginVerdict(mfa=True)
    max_age = collection.session_max_age
    if max_age is not None and not any(
        now - a.auth_time <= max_age for a in candidates
    ):
        return LoginVerdict(stale=True)
    return LoginVerdict()


def _parameters(collection: Collection, message: str, *, stale: bool) -> JSONDict:
    """The ``authorization_parameters`` of a LoginFailed / AuthPolicyFailed.

    Keys as in the globus-sdk-javascript body (session_required_identities is
    ``[]`` there). ``prompt: "login"`` is added only when the session is too
    old, so that a new login gets a fresh auth time (unverified: no real body
    for an age failure is published).
    """
    params: JSONDict = {
        "session_message": message,
        "session_required_identities": [],
        "session_required_mfa": collection.session_required_mfa,
        "session_required_single_domain": list(
            collection.session_required_single_domain or []
        ),
    }
    if collection.session_required_policies:
        # a comma-separated string, as the real AuthPolicyFailed body has it
        params["session_required_policies"] = ",".join(
            collection.session_required_policies
        )
    if stale:
        params["prompt"] = "login"
    return params


def check_policy(
    collection: Collection, session: LoginSession | None, operation: str | None
) -> None:
    """Raise the error Transfer answers when ``session`` does not meet the
    collection's policy; ``operation`` is ``DirListingFailed`` or
    ``MkdirFailed`` for those calls, None for a transfer submission.

    Required policy ids give 403 AuthPolicyFailed even on ls (globus-cli
    test_session_hooks.py runs its AuthPolicyFailed case on ls). Domain, MFA
    and age failures give 502 LoginFailed on ls and mkdir; on a submission they
    give 403 AuthPolicyFailed (the submission is refused before any GridFTP
    login, so no LoginFailed code exists for it; the code is unverified).
    """
    session = session or LoginSession()
    now = time.time()
    missing_policies = set(collection.session_required_policies or ()) - (
        session.policies
    )
    verdict = login_verdict(collection, session, now)
    if not missing_policies and not verdict:
        return
    stale = verdict.stale
    if missing_policies or operation is None:
        params = _parameters(collection, POLICY_FAILED_MESSAGE, stale=stale)
        raise GlobusError(
            403,
            "AuthPolicyFailed",
            POLICY_FAILED_MESSAGE,
            authorization_parameters=params,
        )
    params = _parameters(collection, LOGIN_FAILED_MESSAGE, stale=stale)
    raise GlobusError(
        502,
        f"ExternalError.{operation}.LoginFailed",
        _login_failed_message(collection, verdict),
        authorization_parameters=params,
    )


def _login_failed_message(collection: Collection, verdict: LoginVerdict) -> str:
    """The GridFTP-style text of the real LoginFailed body (globus-sdk-javascript
    errors.spec.ts); only the domain wording is from a real body."""
    if verdict.domain:
        why = "None of your identities are from domains allowed by resource policies"
    elif verdict.mfa:
        why = "Multi-factor authentication is required by resource policies"
    else:
        why = "Your authentication is too old for resource policies"
    return (
        "Command Failed: Error (login)\n"
        f"Endpoint: {collection.display_name} ({collection.id})\n"
        "Server: 127.0.0.1:443\nMessage: Login Failed\n---\n"
        "Details: 530-Login incorrect. : GlobusError: v=1 c=LOGIN_DENIED\\r\\n"
        f"530-GridFTP-Message: {why}\\r\\n530 End.\\r\\n\n"
    )
