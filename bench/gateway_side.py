"""The gateway side: its registry, and credentials minted through its store before a run.

A refresh token or a code at the gateway normally needs a person to sign in through a browser.
To prepare thousands, the benchmark writes them the way the gateway itself does, through the
store contract (:class:`~gateway.store.sql.SqlStore`, the same PostgreSQL database the serving
process uses): a national subject, an SSO session with the claims a callback records, then per
credential a grant and its refresh token, or a grant, the session participant and the code, as
``CodeGrant.save_authorization_code`` writes them. Only the HTTP requests of the measured runs
reach the gateway process.
"""

from __future__ import annotations

import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pydantic import SecretStr
from sqlalchemy import func, select, text

from bench.browser import Browser, FlowError, form_action, location, query
from bench.keycloak_side import BenchRealm, pkce_pair
from bench.servers import Gateway
from gateway.identity import check_character, identity_key, parse_identity_number
from gateway.sealing import IdentitySealer, SecretCipher
from gateway.sessions import SEALED_ID_NUMBER
from gateway.store.contract import CodeRecord, RefreshTokenRecord, SsoSession, token_hash
from gateway.store.schema import session_participants, sso_sessions
from gateway.store.sql import SqlStore

REGION = "bench"
PORTAL = "bench-portal"
SCOPE = "openid profile"
SESSION_LIFETIME = timedelta(hours=8)


@dataclass
class Registered:
    client_id: str
    client_secret: str
    redirect_uri: str

    @property
    def credentials(self) -> tuple[str, str]:
        return (self.client_id, self.client_secret)


def register(gateway: Gateway, realm: BenchRealm) -> Registered:
    """The bench realm as region ``bench`` and one confidential portal, via the admin API."""
    gateway.admin(
        "PUT",
        f"/regions/{REGION}",
        {
            "names": {"zh": "基准", "en": "Bench"},
            "kind": "province",
            "issuer": realm.issuer,
            "client_id": "tongxing",
            "client_secret": realm.upstream_client_secret,
        },
    )
    created = gateway.admin(
        "PUT",
        f"/portals/{PORTAL}",
        {
            "names": {"zh": "基准门户", "en": "Bench portal"},
            "owner": REGION,
            "redirect_uris": [realm.redirect_uri],
            "grant_types": ["authorization_code", "refresh_token", "client_credentials"],
            "scopes": ["openid", "profile"],
            "token_endpoint_auth_method": "client_secret_basic",
        },
    )
    if not isinstance(created, dict) or not isinstance(created.get("client_secret"), str):
        raise FlowError("the admin API returned no client secret for the bench portal")
    return Registered(PORTAL, created["client_secret"], realm.redirect_uri)


def identity_number(index: int) -> str:
    """A valid GB 11643 number, different for each index (address 110105, born 1980-01-01)."""
    first17 = f"11010519800101{index % 1000:03d}"
    return first17 + check_character(first17)


class Minter:
    """Writes subjects, sessions, grants, refresh tokens and codes as the gateway would."""

    def __init__(self, gateway: Gateway, portal: Registered, people: int = 32) -> None:
        self.store = SqlStore.from_url(gateway.database_url)
        self.portal = portal
        self.sealer = IdentitySealer(SecretCipher.from_secrets(SecretStr(gateway.mfa_secret)))
        national = secrets.token_bytes(32)
        now = datetime.now(UTC)
        self.sessions: list[SsoSession] = []
        for index in range(people):
            number = parse_identity_number(identity_number(index))
            subject = self.store.link_subject(
                identity_key(number, national), REGION, f"upstream-{index}", now
            )
            session = self.session_for(subject.id, number.value, now)
            self.store.create_session(session)
            self.sessions.append(session)

    def session_for(self, subject: str, number: str, now: datetime) -> SsoSession:
        """An SSO session with the claims ``/callback`` records."""
        return SsoSession(
            session_hash=token_hash(secrets.token_urlsafe(32)),
            subject=subject,
            region=REGION,
            auth_time=now,
            acr="loa1",
            amr=("pwd",),
            created_at=now,
            expires_at=now + SESSION_LIFETIME,
            claims={
                "home_region": REGION,
                SEALED_ID_NUMBER: self.sealer.seal_identity_number(
                    parse_identity_number(number), subject
                ),
                "name": "张三",
            },
        )

    def close(self) -> None:
        self.store.close()

    def refresh_tokens(self, count: int, workers: int = 8) -> list[str]:
        def one(index: int) -> str:
            session = self.sessions[index % len(self.sessions)]
            now = datetime.now(UTC)
            grant = self.store.create_grant(
                self.portal.client_id, session.subject, now, session_hash=session.session_hash
            )
            value = secrets.token_urlsafe(32)
            self.store.save_refresh_token(
                RefreshTokenRecord(
                    token_hash=token_hash(value),
                    grant_id=grant.grant_id,
                    client_id=self.portal.client_id,
                    subject=session.subject,
                    scope=SCOPE,
                    expires_at=now + SESSION_LIFETIME,
                )
            )
            return value

        with ThreadPoolExecutor(workers) as pool:
            tokens = list(pool.map(one, range(count)))
        self.analyze()
        return tokens

    def analyze(self) -> None:
        """Refresh PostgreSQL's statistics after a bulk write, as autovacuum would by itself.

        Without it the planner would plan the gateway's (prepared) statements for the tables
        as they were before thousands of rows arrived, which no long-running database does.
        """
        with self.store.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.execute(text("ANALYZE"))

    def codes(self, count: int, workers: int = 8) -> list[tuple[str, str]]:
        """(code, code_verifier) pairs, written as ``CodeGrant.save_authorization_code`` does.

        Their lifetime is ten minutes rather than the gateway's 60 s, because they are made in
        bulk before the run that redeems them.
        """

        def one(index: int) -> tuple[str, str]:
            session = self.sessions[index % len(self.sessions)]
            now = datetime.now(UTC)
            code = secrets.token_urlsafe(32)
            verifier, challenge = pkce_pair()
            self.store.issue_code(
                CodeRecord(
                    code_hash=token_hash(code),
                    grant_id="-",
                    client_id=self.portal.client_id,
                    redirect_uri=self.portal.redirect_uri,
                    scope=SCOPE,
                    nonce=secrets.token_urlsafe(8),
                    code_challenge=challenge,
                    code_challenge_method="S256",
                    claims={
                        "acr": session.acr,
                        "amr": list(session.amr),
                        "auth_time": int(session.auth_time.timestamp()),
                    },
                    expires_at=now + timedelta(minutes=10),
                ),
                session.subject,
                now,
                session_hash=session.session_hash,
                sid=secrets.token_urlsafe(16),
            )
            return code, verifier

        with ThreadPoolExecutor(workers) as pool:
            codes = list(pool.map(one, range(count)))
        self.analyze()
        return codes

    # --- SSO sessions in bulk (memory per session) ------------------------------------------------

    def bulk_sessions(self, count: int, batch: int = 5000) -> None:
        """``count`` SSO sessions, each with one participating portal, in multi-row INSERTs.

        The rows are what ``create_session`` and ``add_participant`` write (same columns, same
        claims, a real sealed identity number), inserted in batches rather than one transaction
        each, so that 100,000 take seconds.
        """
        template = self.sessions[0]
        now = datetime.now(UTC)
        with self.store.engine.begin() as conn:
            for start in range(0, count, batch):
                rows, participants = [], []
                for _ in range(min(batch, count - start)):
                    session_hash = token_hash(secrets.token_urlsafe(32))
                    claims = dict(template.claims)
                    rows.append(
                        {
                            "session_hash": session_hash,
                            "subject": template.subject,
                            "region": REGION,
                            "auth_time": now,
                            "acr": template.acr,
                            "amr": list(template.amr),
                            "claims": claims,
                            "created_at": now,
                            "expires_at": now + SESSION_LIFETIME,
                            "ended_at": None,
                        }
                    )
                    participants.append(
                        {
                            "session_hash": session_hash,
                            "client_id": self.portal.client_id,
                            "sid": secrets.token_urlsafe(16),
                            "created_at": now,
                        }
                    )
                conn.execute(sso_sessions.insert(), rows)
                conn.execute(session_participants.insert(), participants)

    def stored_bytes(self) -> dict[str, int]:
        """Bytes on disk of the session tables (heap, TOAST and indexes), after VACUUM."""
        sizes: dict[str, int] = {}
        with self.store.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT")
            for table in ("sso_sessions", "session_participants"):
                conn.execute(text(f"VACUUM {table}"))
                sizes[table] = int(
                    conn.execute(select(func.pg_total_relation_size(table))).scalar_one()
                )
            sizes["rows"] = int(
                conn.execute(text("SELECT count(*) FROM sso_sessions")).scalar_one()
            )
        return sizes


@dataclass(frozen=True)
class FederatedTiming:
    """One federated login: the gateway's three hops and the region's two."""

    authorize: float  # portal -> gateway /authorize -> redirect to the region
    region_page: float  # Keycloak's login page
    region_password: float  # Keycloak checks the password, redirects to the gateway
    # gateway /callback: upstream code exchange, ID token checks, session, the portal's code
    callback: float
    token: float  # portal -> gateway /token

    @property
    def gateway(self) -> float:
        return self.authorize + self.callback + self.token

    @property
    def region(self) -> float:
        return self.region_page + self.region_password

    @property
    def total(self) -> float:
        return self.gateway + self.region


def federated_login(gateway: Gateway, portal: Registered, realm: BenchRealm) -> FederatedTiming:
    """A person signing in to the portal through the gateway and the region, fresh browser."""
    browser = Browser()
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(8)
    params = {
        "client_id": portal.client_id,
        "response_type": "code",
        "redirect_uri": portal.redirect_uri,
        "scope": SCOPE,
        "state": state,
        "nonce": secrets.token_urlsafe(8),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "region": REGION,
    }
    to_region, authorize = browser.request("GET", f"{gateway.issuer}/authorize", params=params)
    page, region_page = browser.request("GET", location(to_region))
    to_callback, region_password = browser.request(
        "POST",
        form_action(page),
        data={"username": realm.username, "password": realm.password, "credentialId": ""},
    )
    to_portal, callback = browser.request("GET", location(to_callback))
    answer = query(location(to_portal))
    if "code" not in answer or answer.get("state") != state:
        raise FlowError(f"the gateway's authorization response: {answer}")
    tokens, token = browser.request(
        "POST",
        f"{gateway.issuer}/token",
        data={
            "grant_type": "authorization_code",
            "code": answer["code"],
            "redirect_uri": portal.redirect_uri,
            "code_verifier": verifier,
        },
        auth=portal.credentials,
    )
    if tokens.status_code != 200 or "id_token" not in tokens.json():
        raise FlowError(f"the gateway's code exchange: {tokens.status_code} {tokens.text[:200]}")
    return FederatedTiming(authorize, region_page, region_password, callback, token)


def access_token(gateway: Gateway, portal: Registered, refresh_token: str) -> str:
    """One real refresh at the gateway: an access token with the ``openid`` scope."""
    response = Browser().request(
        "POST",
        f"{gateway.issuer}/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
        auth=portal.credentials,
    )[0]
    if response.status_code != 200:
        raise FlowError(f"the gateway's refresh: {response.status_code} {response.text[:200]}")
    return str(response.json()["access_token"])
