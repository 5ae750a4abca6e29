"""The storage contract: records, one narrow protocol per aggregate, :class:`Store`, errors.

One module per aggregate, each with its records, its errors and its protocol:

* :mod:`.subjects` (:class:`SubjectStore`): national subjects and their upstream links;
* :mod:`.registry` (:class:`RegistryStore`): regions and portals;
* :mod:`.tokens` (:class:`TokenStore`): grants, authorization codes, access and refresh tokens;
* :mod:`.sessions` (:class:`SessionStore`): SSO sessions, participants, logout;
* :mod:`.pending_authorizations` (:class:`PendingAuthorizationStore`): a portal's request from
  ``/authorize`` to its answer (the sign-in's one record);
* :mod:`.second_factors` (:class:`SecondFactorStore`): TOTP credentials, recovery codes;
* :mod:`.attempts` (:class:`AttemptStore`): failed-attempt counters and lock-outs;
* :mod:`.consents` (:class:`ConsentStore`): claims released with a person's consent;
* :mod:`.replay` (:class:`ReplayStore`): client assertions used once;
* :mod:`.policy_sets` (:class:`PolicySetStore`): the active Cedar policy set, by generation;
* :mod:`.audit` (:class:`AuditStore`): the audit trail, append-only and hash-chained;
* :mod:`.store` (:class:`LifecycleStore`, and :class:`Store`, the union of them all).

Every engine (see :mod:`gateway.store.sql`) passes the same conformance suite,
``tests/integration/store_contract/``. Nothing here knows about HTTP, Flask or SQL.

Conventions that hold for every operation:

* Secrets (authorization codes, tokens, SSO session ids, ``state`` values) are never stored: the
  caller passes their SHA-256 (see :func:`token_hash`) and looks records up by that hash, so a
  copy of the database does not hand out working credentials (RFC 6749 §10.3, §10.5).
* Times are timezone-aware datetimes supplied by the caller (``now``), so tests own the clock. A
  record is valid while ``now < expires_at``; it is expired from ``expires_at`` on.
* Each operation is one transaction: an error leaves nothing half-written.
"""

from gateway.store.contract.attempts import AttemptStore
from gateway.store.contract.audit import (
    AuditAnchor,
    AuditEntry,
    AuditRecord,
    AuditStore,
    AuditVerification,
)
from gateway.store.contract.common import (
    DuplicateRecordError,
    JsonObject,
    RecordNotFoundError,
    StoreError,
    StoreUnavailableError,
    token_hash,
)
from gateway.store.contract.consents import Consent, ConsentStore
from gateway.store.contract.pending_authorizations import (
    AuthorizationRequest,
    PendingAuthorization,
    PendingAuthorizationNotFoundError,
    PendingAuthorizationStore,
    PendingStage,
    UpstreamLeg,
)
from gateway.store.contract.policy_sets import (
    PolicyGenerationConflictError,
    PolicySetRecord,
    PolicySetStore,
)
from gateway.store.contract.registry import (
    RegistryDocument,
    RegistryKind,
    RegistryStore,
    RevisionConflictError,
)
from gateway.store.contract.replay import ReplayStore
from gateway.store.contract.second_factors import RecoveryCode, SecondFactorStore, TotpCredential
from gateway.store.contract.sessions import (
    EndedSession,
    SessionNotFoundError,
    SessionParticipant,
    SessionStore,
    SsoSession,
)
from gateway.store.contract.store import LifecycleStore, Store
from gateway.store.contract.subjects import (
    Subject,
    SubjectLink,
    SubjectLinkConflictError,
    SubjectNotFoundError,
    SubjectStore,
)
from gateway.store.contract.tokens import (
    AccessTokenRecord,
    CodeNotFoundError,
    CodeRecord,
    CodeReplayedError,
    Grant,
    GrantNotFoundError,
    RefreshTokenNotFoundError,
    RefreshTokenRecord,
    RefreshTokenReuseError,
    RefreshTokenStanding,
    RefreshTokenState,
    RefreshTokenStatus,
    TokenStore,
)

__all__ = [
    "AccessTokenRecord",
    "AttemptStore",
    "AuditAnchor",
    "AuditEntry",
    "AuditRecord",
    "AuditStore",
    "AuditVerification",
    "AuthorizationRequest",
    "CodeNotFoundError",
    "CodeRecord",
    "CodeReplayedError",
    "Consent",
    "ConsentStore",
    "DuplicateRecordError",
    "EndedSession",
    "Grant",
    "GrantNotFoundError",
    "JsonObject",
    "LifecycleStore",
    "PendingAuthorization",
    "PendingAuthorizationNotFoundError",
    "PendingAuthorizationStore",
    "PendingStage",
    "PolicyGenerationConflictError",
    "PolicySetRecord",
    "PolicySetStore",
    "RecordNotFoundError",
    "RecoveryCode",
    "RefreshTokenNotFoundError",
    "RefreshTokenRecord",
    "RefreshTokenReuseError",
    "RefreshTokenStanding",
    "RefreshTokenState",
    "RefreshTokenStatus",
    "RegistryDocument",
    "RegistryKind",
    "RegistryStore",
    "ReplayStore",
    "RevisionConflictError",
    "SecondFactorStore",
    "SessionNotFoundError",
    "SessionParticipant",
    "SessionStore",
    "SsoSession",
    "Store",
    "StoreError",
    "StoreUnavailableError",
    "Subject",
    "SubjectLink",
    "SubjectLinkConflictError",
    "SubjectNotFoundError",
    "SubjectStore",
    "TokenStore",
    "TotpCredential",
    "UpstreamLeg",
    "token_hash",
]
