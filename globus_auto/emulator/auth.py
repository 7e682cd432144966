"""The Auth API subset: tokens, the login page, OpenID Connect, consents.

One person logs in (the authorize page approves at once, as a browser with a
Globus session would). The page keeps that person's login session and honours
the session parameters globus-sdk sends (``session_required_single_domain``,
``session_required_identities``, ``session_required_mfa``,
``session_required_policies``, ``prompt=login``); each token carries a copy of
the session it came from (``sessions.LoginSession``). Native clients use PKCE
and get rotating refresh tokens; confidential clients use client credentials.
Every token is remembered, so tokens this service did not issue, expired ones
and revoked ones are refused.
"""

from __future__ import annotations

import base64
import hashlib
import html
import secrets
import time
import urllib.parse
from typing import Any

import jwt

from globus_auto.emulator.auth_records import (
    AUTH_RS,
    CODE_LIFETIME,
    DATA_ACCESS_PREFIX,
    DATA_ACCESS_SUFFIX,
    DEFAULT_ACCESS_TOKEN_LIFETIME,
    KEY_ID,
    SIGNING_ALG,
    TRANSFER_SCOPE,
    AuthCode,
    Client,
    Consent,
    RequestedScope,
    Token,
    b64url_uint,
    data_access_collection,
    resource_server_of,
    signing_key,
)
from globus_auto.emulator.identities import (
    IDENTITY_FIELDS,
    PersonIdentities,
    client_identity,
    identity_set_entry,
    log_in,
)
from globus_auto.emulator.server import (
    AuthAPIError,
    GlobusError,
    Handler,
    JSONDict,
    OAuthError,
    Request,
    Response,
)
from globus_auto.emulator.sessions import LoginSession
from globus_auto.emulator.state import EmulatorState, iso_time, utcnow


class AuthService:
    """Auth records and the handlers of the Auth API routes."""

    def __init__(
        self,
        state: EmulatorState,
        clients: dict[str, str | None],
        *,
        access_token_lifetime: int = DEFAULT_ACCESS_TOKEN_LIFETIME,
    ) -> None:
        self.state = state
        self.clients = {
            cid.lower(): Client(cid.lower(), sec) for cid, sec in clients.items()
        }
        self.access_token_lifetime = access_token_lifetime
        self.tokens: dict[str, Token] = {}
        self.codes: dict[str, AuthCode] = {}
        self.consents: list[Consent] = []
        self._next_consent_id = 1000
        self.base_url = ""  # set once the server knows its port
        self.person = PersonIdentities()
        # The person's browser session: kept across authorize requests, as a
        # browser keeps its Globus cookie (None until the first login).
        self.browser_session: LoginSession | None = None

    # ----------------------------------------------------------------- routes

    def routes(self) -> list[tuple[str, str, Handler]]:
        return [
            ("POST", "/v2/oauth2/token", self.token),
            ("GET", "/v2/oauth2/authorize", self.authorize),
            ("GET", "/v2/web/auth-code", self.auth_code_page),
            ("POST", "/v2/oauth2/token/revoke", self.revoke),
            ("POST", "/v2/oauth2/token/introspect", self.introspect),
            ("GET", "/v2/oauth2/userinfo", self.userinfo),
            ("POST", "/v2/oauth2/userinfo", self.userinfo),
            ("GET", "/.well-known/openid-configuration", self.openid_configuration),
            ("GET", "/jwk.json", self.jwks),
            ("GET", "/v2/api/identities", self.identities),
            ("GET", "/v2/api/identities/{id}/consents", self.get_consents),
        ]

    # ---------------------------------------------------------- token checks

    def bearer_token(self, req: Request, resource_server: str) -> Token:
        """The valid access token of the request for ``resource_server``.

        Transfer-style 401s, code ``ClientError.AuthenticationFailed`` for a
        missing, unknown, expired or revoked token alike (GLOBUS.md; globus-cli
        ``exception_handling/hooks/transfer_hooks.py`` keys on that code and
        its test_authentication_error_handling.py fixture carries it).
        """
        header = req.headers.get("authorization", "")
        if not header.lower().startswith("bearer "):
            raise _unauthenticated("No Authorization header provided")
        value = header[7:].strip()
        with self.state.lock:
            token = self.tokens.get(value)
            if (
                token is None
                or token.kind != "access"
                or not token.is_valid(time.time())
            ):
                raise _unauthenticated("Token is not active")
            if token.resource_server != resource_server:
                raise _unauthenticated(
                    f"Token is not valid for resource server {resource_server}"
                )
            return token

    def _auth_bearer(self, req: Request) -> Token:
        """The valid auth.globus.org access token, with Auth API-style errors."""
        try:
            return self.bearer_token(req, AUTH_RS)
        except GlobusError:
            raise AuthAPIError(
                401, "UNAUTHORIZED", "Call must be authenticated", "Unauthorized"
            ) from None

    def has_data_access(self, token: Token, collection_id: str) -> bool:
        """Whether the token's identity consented data_access for the collection
        to the token's client, under the Transfer scope."""
        wanted = f"{DATA_ACCESS_PREFIX}{collection_id}{DATA_ACCESS_SUFFIX}"
        with self.state.lock:
            for consent in self.consents:
                if (
                    consent.scope_name == wanted
                    and consent.client_id == token.client_id
                    and consent.identity_id == token.identity_id
                    and len(consent.dependency_path) == 2
                ):
                    return True
            return False

    def _authenticate_client(self, req: Request, form: dict[str, str]) -> Client:
        """The client of a token-endpoint call: HTTP Basic, or client_id for
        a native app."""
        header = req.headers.get("authorization", "")
        if header.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(header[6:].strip()).decode("utf-8")
                client_id, _, secret = decoded.partition(":")
                client_id = urllib.parse.unquote(client_id)
                secret = urllib.parse.unquote(secret)
            except (ValueError, UnicodeDecodeError):
                raise OAuthError(
                    401, "invalid_client", "Malformed Basic auth"
                ) from None
            client = self.clients.get(client_id.lower())
            if (
                client is None
                or client.secret is None
                or not secrets.compare_digest(client.secret, secret)
            ):
                raise OAuthError(401, "invalid_client", "Invalid client credentials")
            return client
        client_id = form.get("client_id", "")
        client = self.clients.get(client_id.lower())
        if client is None:
            raise OAuthError(401, "invalid_client", "Unknown client")
        if not client.is_native:
            raise OAuthError(
                401, "invalid_client", "Confidential clients must authenticate"
            )
        return client

    # ------------------------------------------------------------ scopes

    def parse_scopes(self, scope_string: str) -> list[RequestedScope]:
        """Parse a scope string; only known scopes and data_access of known
        collections as dependencies of the Transfer scope are allowed."""
        from globus_sdk.scopes import ScopeParser

        try:
            parsed = ScopeParser.parse(scope_string)
        except Exception as exc:
            raise OAuthError(400, "invalid_scope", f"Malformed scope: {exc}") from None
        if not parsed:
            raise OAuthError(400, "invalid_scope", "No scopes requested")
        result = []
        for scope in parsed:
            if resource_server_of(scope.scope_string) is None:
                raise OAuthError(
                    400, "invalid_scope", f"Unknown Scope '{scope.scope_string}'"
                )
            deps = []
            for dep in scope.dependencies:
                if scope.scope_string != TRANSFER_SCOPE or not self._data_access_known(
                    dep.scope_string
                ):
                    raise OAuthError(
                        400, "invalid_scope", f"Unknown Scope '{dep.scope_string}'"
                    )
                if dep.dependencies:
                    raise OAuthError(
                        400, "invalid_scope", f"Unknown Scope '{dep.scope_string}'"
                    )
                deps.append(dep.scope_string)
            result.append(RequestedScope(scope.scope_string, deps))
        return result

    def _data_access_known(self, scope: str) -> bool:
        """Whether ``scope`` is the data_access scope of a collection that has
        one. GCP, guest, high-assurance collections and GCSv5 endpoints have
        none, and asking for it fails at login with "Unknown Scope" (GLOBUS.md;
        globus-sdk ``add_app_data_access_scope`` docstring). The exact wording
        of Globus Auth's error_description is unverified."""
        collection_id = data_access_collection(scope)
        with self.state.lock:
            collection = self.state.collections.get(collection_id or "")
            return collection is not None and collection.scope_exists

    def _record_consents(
        self, client_id: str, identity_id: str, scopes: list[RequestedScope]
    ) -> None:
        """Remember what this identity approved for this client."""
        for requested in scopes:
            root = self._find_consent(client_id, identity_id, requested.scope, [])
            if root is None:
                root = self._add_consent(client_id, identity_id, requested.scope, [])
            for dep in requested.dependencies:
                path = list(root.dependency_path)
                if self._find_consent(client_id, identity_id, dep, path) is None:
                    self._add_consent(client_id, identity_id, dep, path)

    def _find_consent(
        self, client_id: str, identity_id: str, scope: str, parent_path: list[int]
    ) -> Consent | None:
        for consent in self.consents:
            if (
                consent.client_id == client_id
                and consent.identity_id == identity_id
                and consent.scope_name == scope
                and consent.dependency_path[:-1] == parent_path
            ):
                return consent
        return None

    def _add_consent(
        self, client_id: str, identity_id: str, scope: str, parent_path: list[int]
    ) -> Consent:
        self._next_consent_id += 1
        consent = Consent(
            id=self._next_consent_id,
            scope_name=scope,
            client_id=client_id,
            identity_id=identity_id,
            dependency_path=[*parent_path, self._next_consent_id],
            created=str(iso_time(utcnow())),
        )
        self.consents.append(consent)
        return consent

    # --------------------------------------------------------- token issuing

    def _issue(
        self,
        client: Client,
        identity_id: str,
        resource_server: str,
        scopes: list[str],
        *,
        refresh: bool,
        session: LoginSession,
    ) -> JSONDict:
        """Issue an access token (and a refresh token if asked) carrying
        ``session``."""
        now = time.time()
        access = Token(
            value=secrets.token_urlsafe(32),
            kind="access",
            client_id=client.id,
            identity_id=identity_id,
            resource_server=resource_server,
            scopes=scopes,
            expires_at=now + self.access_token_lifetime,
            session=session,
        )
        self.tokens[access.value] = access
        doc: JSONDict = {
            "access_token": access.value,
            "scope": " ".join(scopes),
            "expires_in": self.access_token_lifetime,
            "token_type": "Bearer",
            "resource_server": resource_server,
            "state": "_default",
        }
        if refresh:
            refresh_token = Token(
                value=secrets.token_urlsafe(32),
                kind="refresh",
                client_id=client.id,
                identity_id=identity_id,
                resource_server=resource_server,
                scopes=scopes,
                expires_at=None,
                session=session,
            )
            self.tokens[refresh_token.value] = refresh_token
            doc["refresh_token"] = refresh_token.value
        return doc

    def _token_response(
        self,
        client: Client,
        identity: JSONDict,
        scopes: list[RequestedScope],
        *,
        refresh: bool,
        session: LoginSession,
        nonce: str | None = None,
    ) -> JSONDict:
        """Tokens grouped by resource server: auth.globus.org's first, the rest
        in ``other_tokens``, plus a signed id_token when openid was asked for."""
        by_rs: dict[str, list[str]] = {}
        for requested in scopes:
            rs = resource_server_of(requested.scope)
            assert rs is not None
            if requested.scope not in by_rs.setdefault(rs, []):
                by_rs[rs].append(requested.scope)
        order = sorted(by_rs, key=lambda rs: rs != AUTH_RS)
        docs = [
            self._issue(
                client, identity["id"], rs, by_rs[rs], refresh=refresh, session=session
            )
            for rs in order
        ]
        top = dict(docs[0])
        top["other_tokens"] = docs[1:]
        if AUTH_RS in by_rs and "openid" in by_rs[AUTH_RS]:
            top["id_token"] = self.id_token(
                client.id, identity, top["access_token"], nonce
            )
        return top

    def id_token(
        self, client_id: str, identity: JSONDict, access_token: str, nonce: str | None
    ) -> str:
        now = int(time.time())
        digest = hashlib.sha512(access_token.encode("ascii")).digest()
        claims: JSONDict = {
            "iss": self.issuer,
            "sub": identity["id"],
            "aud": client_id,
            "iat": now,
            "exp": now + self.access_token_lifetime,
            "at_hash": base64.urlsafe_b64encode(digest[:32]).rstrip(b"=").decode(),
            "preferred_username": identity["username"],
            "name": identity.get("name"),
            "email": identity.get("email"),
            "organization": identity.get("organization"),
            "identity_provider": identity["identity_provider"],
            "identity_provider_display_name": identity.get(
                "identity_provider_display_name"
            ),
            "identity_set": [
                identity_set_entry(i) for i in self.identity_set(identity["id"])
            ],
            "last_authentication": now,
        }
        if nonce:
            claims["nonce"] = nonce
        return jwt.encode(
            claims, signing_key(), algorithm=SIGNING_ALG, headers={"kid": KEY_ID}
        )

    @property
    def issuer(self) -> str:
        return self.base_url.rstrip("/")

    def known_identities(self) -> list[JSONDict]:
        result = self.person.all()
        for client in self.clients.values():
            if not client.is_native:
                result.append(client_identity(client.id))
        return result

    def identity_set(self, identity_id: str) -> list[JSONDict]:
        """The identities linked to ``identity_id``, itself first."""
        if identity_id in self.person.ids():
            return self.person.all()
        return [self._identity_by_id(identity_id)]

    # ------------------------------------------------------------ handlers

    def token(self, req: Request) -> Response:
        form = req.form()
        with self.state.lock:
            client = self._authenticate_client(req, form)
            grant_type = form.get("grant_type", "")
            if grant_type == "client_credentials":
                body = self._client_credentials(client, form)
            elif grant_type == "authorization_code":
                body = self._authorization_code(client, form)
            elif grant_type == "refresh_token":
                body = self._refresh(client, form)
            else:
                raise OAuthError(
                    400,
                    "unsupported_grant_type",
                    f"Unsupported grant_type '{grant_type}'",
                )
        return Response(200, body, headers={"Cache-Control": "no-store"})

    def _client_credentials(self, client: Client, form: dict[str, str]) -> JSONDict:
        if client.is_native:
            raise OAuthError(
                400, "unauthorized_client", "Native apps cannot use client_credentials"
            )
        scopes = self.parse_scopes(form.get("scope", ""))
        identity = client_identity(client.id)
        self._record_consents(client.id, identity["id"], scopes)
        # A client's "session" is its own authentication, now: no MFA, no
        # other identity, so collection policies a person must meet refuse it.
        session = LoginSession()
        session.authenticate(identity)
        return self._token_response(
            client, identity, scopes, refresh=False, session=session
        )

    def _authorization_code(self, client: Client, form: dict[str, str]) -> JSONDict:
        code = self.codes.get(form.get("code", ""))
        if code is None or code.used or code.expires_at < time.time():
            raise OAuthError(
                400, "invalid_grant", "Invalid or expired authorization code"
            )
        if code.client_id != client.id:
            raise OAuthError(400, "invalid_grant", "Code was issued to another client")
        if form.get("redirect_uri", "") != code.redirect_uri:
            raise OAuthError(400, "invalid_grant", "redirect_uri does not match")
        if code.code_challenge is not None:
            verifier = form.get("code_verifier", "")
            if not verifier or _pkce_challenge(verifier, code.challenge_method) != (
                code.code_challenge
            ):
                raise OAuthError(400, "invalid_grant", "PKCE verification failed")
        code.used = True
        identity = self.person.primary
        self._record_consents(client.id, identity["id"], code.scopes)
        return self._token_response(
            client, identity, code.scopes, refresh=code.offline, session=code.session
        )

    def _refresh(self, client: Client, form: dict[str, str]) -> JSONDict:
        old = self.tokens.get(form.get("refresh_token", ""))
        if (
            old is None
            or old.kind != "refresh"
            or old.client_id != client.id
            or not old.is_valid(time.time())
        ):
            raise OAuthError(400, "invalid_grant", "Invalid refresh token")
        old.active = False  # rotation: a used refresh token is spent
        doc = self._issue(
            client,
            old.identity_id,
            old.resource_server,
            old.scopes,
            refresh=True,
            session=old.session or LoginSession(),
        )
        doc["other_tokens"] = []
        return doc

    def authorize(self, req: Request) -> Response:
        client = self.clients.get((req.arg("client_id") or "").lower())
        redirect_uri = req.arg("redirect_uri") or ""
        if client is None or not redirect_uri.startswith(("http://", "https://")):
            return _html(400, "Login failed", "Unknown client or invalid redirect_uri.")
        state = req.arg("state")
        try:
            if req.arg("response_type") != "code":
                raise OAuthError(
                    400, "unsupported_response_type", "response_type must be code"
                )
            scopes = self.parse_scopes(req.arg("scope") or "")
            challenge = req.arg("code_challenge")
            method = req.arg("code_challenge_method") or "plain"
            if client.is_native and not challenge:
                raise OAuthError(400, "invalid_request", "Native apps must use PKCE")
            if method not in ("S256", "plain"):
                raise OAuthError(
                    400, "invalid_request", "Unknown code_challenge_method"
                )
            session = self._log_in(req)
        except OAuthError as exc:
            return _redirect(
                redirect_uri,
                {
                    "error": exc.error,
                    "error_description": exc.description,
                    "state": state,
                },
            )
        code = AuthCode(
            code=secrets.token_urlsafe(24),
            client_id=client.id,
            redirect_uri=redirect_uri,
            scopes=scopes,
            code_challenge=challenge,
            challenge_method=method,
            offline=req.arg("access_type") == "offline",
            expires_at=time.time() + CODE_LIFETIME,
            session=session,
        )
        with self.state.lock:
            self.codes[code.code] = code
        return _redirect(redirect_uri, {"code": code.code, "state": state})

    def _log_in(self, req: Request) -> LoginSession:
        """Log the person in as the authorize request's session parameters ask
        (globus-sdk sends lists comma-joined and booleans as "True"/"False":
        ``BaseLoginClient.oauth2_get_authorize_url``); return a copy of the
        browser session for the code."""
        try:
            with self.state.lock:
                session = log_in(
                    self.person,
                    self.browser_session,
                    domains=_split_list(
                        req.query.get("session_required_single_domain", [])
                    ),
                    identities=_split_list(
                        req.query.get("session_required_identities", [])
                    ),
                    mfa=(req.arg("session_required_mfa") or "").lower() == "true",
                    prompt_login=req.arg("prompt") == "login",
                    policies=_split_list(
                        req.query.get("session_required_policies", [])
                    ),
                )
                self.browser_session = session
                return session.snapshot()
        except ValueError as why:
            raise OAuthError(400, "access_denied", str(why)) from None

    def _age_sessions(self, seconds: float) -> None:
        """Move every auth time ``seconds`` back (lock held), so a test can see a
        session grow too old for ``session_max_age`` without waiting."""
        sessions = [self.browser_session]
        sessions += [t.session for t in self.tokens.values()]
        sessions += [c.session for c in self.codes.values()]
        seen: set[int] = set()
        for session in sessions:
            if session is None or id(session) in seen:
                continue
            seen.add(id(session))
            for authentication in session.authentications.values():
                authentication.auth_time -= seconds

    def auth_code_page(self, req: Request) -> Response:
        code = req.arg("code")
        if not code:
            error = html.escape(req.arg("error_description") or req.arg("error") or "")
            return _html(400, "Login failed", f"No authorization code. {error}")
        body = (
            "<p>Copy this code back to your program:</p>"
            f'<p><code id="auth-code">{html.escape(code)}</code></p>'
        )
        return _html(200, "Native App Authorization Code", body)

    def revoke(self, req: Request) -> Response:
        form = req.form()
        with self.state.lock:
            client = self._authenticate_client(req, form)
            token = self.tokens.get(form.get("token", ""))
            if token is not None and token.client_id == client.id:
                token.active = False
        return Response(200, {"active": False})

    def introspect(self, req: Request) -> Response:
        form = req.form()
        with self.state.lock:
            client = self._authenticate_client(req, form)
            if client.is_native:
                raise OAuthError(401, "invalid_client", "Native apps cannot introspect")
            token = self.tokens.get(form.get("token", ""))
            if token is None or not token.is_valid(time.time()):
                return Response(200, {"active": False})
            identity = self._identity_by_id(token.identity_id)
            body: JSONDict = {
                "active": True,
                "token_type": "Bearer",
                "scope": " ".join(token.scopes),
                "client_id": token.client_id,
                "username": identity["username"],
                "name": identity.get("name"),
                "email": identity.get("email"),
                "exp": int(token.expires_at or 0) or None,
                "iat": int(time.time()),
                "nbf": int(time.time()),
                "sub": token.identity_id,
                "aud": [token.resource_server, token.client_id],
                "iss": self.issuer,
            }
            if "identity_set" in (form.get("include") or ""):
                body["identity_set"] = [
                    i["id"] for i in self.identity_set(token.identity_id)
                ]
        return Response(200, body)

    def _identity_by_id(self, identity_id: str) -> JSONDict:
        for identity in self.known_identities():
            if identity["id"] == identity_id:
                return identity
        return dict(self.person.primary)

    def userinfo(self, req: Request) -> Response:
        with self.state.lock:
            token = self._auth_bearer(req)
            identity = self._identity_by_id(token.identity_id)
            linked = self.identity_set(token.identity_id)
        entry = identity_set_entry(identity)
        # userinfo names the username "preferred_username" (OpenID Connect).
        body: JSONDict = {k: v for k, v in entry.items() if k != "username"}
        body["preferred_username"] = entry["username"]
        body["identity_set"] = [identity_set_entry(i) for i in linked]
        return Response(200, body)

    def openid_configuration(self, req: Request) -> Response:
        base = self.base_url
        return Response(
            200,
            {
                "issuer": self.issuer,
                "authorization_endpoint": f"{base}v2/oauth2/authorize",
                "token_endpoint": f"{base}v2/oauth2/token",
                "userinfo_endpoint": f"{base}v2/oauth2/userinfo",
                "revocation_endpoint": f"{base}v2/oauth2/token/revoke",
                "introspection_endpoint": f"{base}v2/oauth2/token/introspect",
                "jwks_uri": f"{base}jwk.json",
                "response_types_supported": ["code"],
                "grant_types_supported": [
                    "authorization_code",
                    "client_credentials",
                    "refresh_token",
                ],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": [SIGNING_ALG],
                "scopes_supported": ["openid", "email", "profile"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic"],
                "claims_supported": [
                    "at_hash",
                    "aud",
                    "email",
                    "exp",
                    "name",
                    "nonce",
                    "preferred_username",
                    "iat",
                    "iss",
                    "sub",
                ],
                "code_challenge_methods_supported": ["S256", "plain"],
            },
        )

    def jwks(self, req: Request) -> Response:
        numbers = signing_key().public_key().public_numbers()
        key = {
            "alg": SIGNING_ALG,
            "e": b64url_uint(numbers.e),
            "kty": "RSA",
            "n": b64url_uint(numbers.n),
            "use": "sig",
            "kid": KEY_ID,
        }
        return Response(200, {"keys": [key]})

    def identities(self, req: Request) -> Response:
        self._auth_bearer(req)
        ids = _split_list(req.query.get("ids", []))
        usernames = _split_list(req.query.get("usernames", []))
        if ids and usernames:
            raise AuthAPIError(
                400, "INVALID_PARAMETERS", "Use either ids or usernames", "Bad Request"
            )
        found = []
        for identity in self.known_identities():
            if identity["id"] in ids or identity["username"] in usernames:
                found.append({k: identity[k] for k in IDENTITY_FIELDS})
        return Response(200, {"identities": found})

    def get_consents(self, req: Request, identity_id: str) -> Response:
        with self.state.lock:
            token = self._auth_bearer(req)
            if token.identity_id != identity_id.lower():
                raise AuthAPIError(
                    403,
                    "FORBIDDEN",
                    "Cannot view another identity's consents",
                    "Forbidden",
                )
            docs = [
                c.document()
                for c in self.consents
                if c.identity_id == token.identity_id
            ]
        return Response(200, {"consents": docs})

    # ------------------------------------------------------------- controls

    def control(self, body: JSONDict) -> None:
        """``expire_access_tokens``, ``expire_refresh_tokens``, ``revoke_all``,
        ``age_sessions`` (seconds to move every login's auth times back)."""
        now = time.time()
        with self.state.lock:
            if body.get("age_sessions"):
                self._age_sessions(float(body["age_sessions"]))
            for token in self.tokens.values():
                if body.get("revoke_all"):
                    token.active = False
                if body.get("expire_access_tokens") and token.kind == "access":
                    token.expires_at = min(token.expires_at or now, now - 1)
                if body.get("expire_refresh_tokens") and token.kind == "refresh":
                    token.expires_at = now - 1


def _unauthenticated(message: str) -> GlobusError:
    return GlobusError(401, "ClientError.AuthenticationFailed", message)


def _pkce_challenge(verifier: str, method: str) -> str:
    if method == "plain":
        return verifier
    digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _split_list(values: list[str]) -> list[str]:
    return [
        item.strip().lower()
        for value in values
        for item in value.split(",")
        if item.strip()
    ]


def _redirect(uri: str, params: dict[str, Any]) -> Response:
    query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
    sep = "&" if urllib.parse.urlsplit(uri).query else "?"
    return Response(
        302,
        "",
        headers={"Location": f"{uri}{sep}{query}"},
        content_type="text/html; charset=utf-8",
    )


def _html(status: int, title: str, body: str) -> Response:
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}"
        "<p><small>globus-auto emulator: a local test service, not Globus.</small></p>"
        "</body></html>"
    )
    return Response(status, page, content_type="text/html; charset=utf-8")
