"""Auth records: clients, tokens, authorization codes, consents, scopes.

Plain data the Auth routes (``auth.py``) keep, and the scope strings they
understand. Consent documents follow globus-sdk's ``get_consents`` fixtures.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric import rsa

from globus_auto.emulator.server import JSONDict
from globus_auto.emulator.sessions import LoginSession

AUTH_RS = "auth.globus.org"
TRANSFER_RS = "transfer.api.globus.org"
TRANSFER_SCOPE = "urn:globus:auth:scope:transfer.api.globus.org:all"
AUTH_SCOPES = (
    "openid",
    "profile",
    "email",
    "urn:globus:auth:scope:auth.globus.org:view_identities",
    "urn:globus:auth:scope:auth.globus.org:view_identity_set",
)
DATA_ACCESS_PREFIX = "https://auth.globus.org/scopes/"
DATA_ACCESS_SUFFIX = "/data_access"
DEFAULT_ACCESS_TOKEN_LIFETIME = 172800
CODE_LIFETIME = 600
SIGNING_ALG = "RS512"
KEY_ID = "defaultkey"

_KEY: rsa.RSAPrivateKey | None = None


def signing_key() -> rsa.RSAPrivateKey:
    """One RSA key per process: generating one per emulator would slow tests."""
    global _KEY
    if _KEY is None:
        _KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return _KEY


def b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


@dataclass
class Client:
    id: str
    secret: str | None

    @property
    def is_native(self) -> bool:
        return self.secret is None


@dataclass
class Token:
    value: str
    kind: str  # "access" or "refresh"
    client_id: str
    identity_id: str
    resource_server: str
    scopes: list[str]
    expires_at: float | None
    active: bool = True
    session: LoginSession | None = None

    def is_valid(self, now: float) -> bool:
        return self.active and (self.expires_at is None or self.expires_at > now)


@dataclass
class RequestedScope:
    """A parsed scope: its string and the data_access scopes it depends on."""

    scope: str
    dependencies: list[str] = field(default_factory=list)


@dataclass
class AuthCode:
    code: str
    client_id: str
    redirect_uri: str
    scopes: list[RequestedScope]
    code_challenge: str | None
    challenge_method: str
    offline: bool
    expires_at: float
    session: LoginSession
    used: bool = False


@dataclass
class Consent:
    id: int
    scope_name: str
    client_id: str
    identity_id: str
    dependency_path: list[int]
    created: str

    def document(self) -> JSONDict:
        return {
            "created": self.created,
            "id": self.id,
            "status": "approved",
            "updated": self.created,
            "allows_refresh": True,
            "dependency_path": list(self.dependency_path),
            "scope_name": self.scope_name,
            "atomically_revocable": len(self.dependency_path) > 1,
            "effective_identity": self.identity_id,
            "auto_approved": False,
            "last_used": self.created,
            "scope": str(uuid.uuid5(uuid.NAMESPACE_URL, self.scope_name)),
            "client": self.client_id,
        }


def resource_server_of(scope: str) -> str | None:
    if scope in AUTH_SCOPES:
        return AUTH_RS
    if scope == TRANSFER_SCOPE:
        return TRANSFER_RS
    return None


def data_access_collection(scope: str) -> str | None:
    """The collection id of a data_access scope string, or None."""
    if scope.startswith(DATA_ACCESS_PREFIX) and scope.endswith(DATA_ACCESS_SUFFIX):
        return scope[len(DATA_ACCESS_PREFIX) : -len(DATA_ACCESS_SUFFIX)].lower()
    return None
