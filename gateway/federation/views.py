"""The federation endpoints (OpenID Federation 1.0 §8, §9) and the subordinates' admin API.

Views parse and render; :class:`~gateway.federation.anchor.TrustAnchor` decides. Federation
errors are JSON objects with ``error`` and ``error_description`` (§8.9), whatever the caller
accepts. The admin endpoints take the admin API's bearer tokens (:mod:`gateway.admin.access`):
every role reads, only the platform writes (a subordinate's keys are the federation's trust, and
a trust mark is the platform's say-so), but for the operator's writes of the subordinate of a
region or portal it manages, bound to that registration (THREAT_MODEL row 1).
"""

from __future__ import annotations

import re
from typing import Any, Final, get_args
from urllib.parse import urlsplit

from flask import Blueprint, Response, g, jsonify, request

from gateway.admin.access import (
    Operation,
    Principal,
    Principals,
    Role,
    authorize,
    may_delete,
    resource_of,
)
from gateway.errors import (
    FederationError,
    FederationNotFound,
    InvalidDocument,
    InvalidToken,
    ManagedByAnother,
    RegistrationNotFound,
    RoleRefused,
)
from gateway.federation.anchor import TrustAnchor
from gateway.federation.statements import (
    ENTITY_STATEMENT_MEDIA_TYPE,
    JWK_SET_MEDIA_TYPE,
    RESOLVE_RESPONSE_MEDIA_TYPE,
    WELL_KNOWN_PATH,
)
from gateway.federation.trust_marks import STATUS_RESPONSE_MEDIA_TYPE, TRUST_MARK_MEDIA_TYPE
from gateway.observe import AdminChange, redact
from gateway.registry import CLIENT_ID_PATTERN, CODE_PATTERN, Portal, Region
from gateway.services import current_services
from gateway.store.contract import Store
from gateway.store.contract.federation import (
    FederationSubordinate,
    FederationTrustMark,
    SubordinateKind,
)
from tongxing_api.vocabulary import API_PATH

blueprint = Blueprint("federation", __name__)
admin_blueprint = Blueprint("federation_admin", __name__, url_prefix=f"{API_PATH}/federation")
KINDS: Final = get_args(SubordinateKind)
#: What an operator may write here: the subordinate of a region or portal it manages.
OPERATOR_WRITES: Final = frozenset(
    {"federation_admin.put_record", "federation_admin.delete_record"}
)


def _anchor() -> TrustAnchor:
    anchor = current_services().federation
    if anchor is None:
        raise FederationNotFound("the federation is not configured in this process")
    return anchor


def _jwt(token: str, media_type: str) -> Response:
    response = Response(token, mimetype=media_type)
    response.cache_control.no_store = True
    return response


@blueprint.errorhandler(FederationError)
def _federation_error(error: FederationError) -> tuple[Response, int]:
    """§8.9: ``application/json`` with ``error`` and ``error_description``."""
    return jsonify({"error": error.code, "error_description": error.message_en}), error.status


@blueprint.get(WELL_KNOWN_PATH)
def entity_configuration() -> Response:
    """§9: the entity configuration, ``application/entity-statement+jwt``."""
    return _jwt(_anchor().entity_configuration(), ENTITY_STATEMENT_MEDIA_TYPE)


def _optional(name: str) -> str | None:
    """A parameter given at most once, never empty (§8.9 ``invalid_request`` otherwise)."""
    values = request.args.getlist(name)
    if len(values) > 1 or (values and not values[0]):
        raise FederationError(f"{name} must be given once", message_en=f"Give {name} once.")
    return values[0] if values else None


def _required(name: str) -> str:
    value = _optional(name)
    if value is None:
        raise FederationError(f"{name} is missing", message_en=f"The {name} parameter is missing.")
    return value


def _repeated(name: str) -> list[str]:
    """A parameter that may be given several times (§8.2.1, §8.3.1), never empty."""
    values = request.args.getlist(name)
    if any(not value for value in values):
        raise FederationError(f"{name} is empty", message_en=f"The {name} parameter is empty.")
    return values


def _boolean(name: str) -> bool:
    """An OPTIONAL Boolean parameter (§8.2.1): ``true`` or ``false``, else ``invalid_request``."""
    value = _optional(name)
    if value not in (None, "true", "false"):
        raise FederationError(
            f"{name} must be true or false", message_en=f"{name} is true or false."
        )
    return value == "true"


@blueprint.get("/federation/fetch")
def fetch() -> Response:
    """§8.1: the subordinate statement about ``sub``."""
    sub = _required("sub")
    return _jwt(_anchor().subordinate_statement(sub), ENTITY_STATEMENT_MEDIA_TYPE)


@blueprint.get("/federation/list")
def list_subordinates() -> Response:
    """§8.2: the subordinates' entity identifiers (§8.2.2, a JSON array), filtered as §8.2.1
    says: by ``entity_type`` (repeatable: any of them), ``trust_marked=true`` (holding an active
    trust mark), ``trust_mark_type`` (holding an active mark of that type) and
    ``intermediate=true`` (the intermediates only, I20). A Boolean that is neither
    ``true`` nor ``false``, or an empty value, is ``invalid_request`` (§8.9)."""
    anchor = _anchor()
    entity_types = _repeated("entity_type")
    trust_marked = _boolean("trust_marked")
    intermediate = _boolean("intermediate")
    trust_mark_type = _optional("trust_mark_type")
    ids = anchor.subordinate_ids(entity_types, intermediate=intermediate)
    if trust_marked or trust_mark_type is not None:
        marked = {mark.entity_id for mark in anchor.trust_marks.active(trust_mark_type)}
        ids = [entity_id for entity_id in ids if entity_id in marked]
    return jsonify(ids)


@blueprint.get("/federation/resolve")
def resolve() -> Response:
    """§8.3: the resolved, policy-applied metadata of ``sub``, its trust chain and verified
    trust marks (§8.3.2). ``sub`` once; ``trust_anchor`` (at least once) and ``entity_type``
    may repeat (§8.3.1)."""
    sub, anchors = _required("sub"), _repeated("trust_anchor")
    if not anchors:
        raise FederationError(
            "trust_anchor is missing", message_en="The trust_anchor parameter is missing."
        )
    types = _repeated("entity_type")
    return _jwt(_anchor().resolve(sub, anchors, types), RESOLVE_RESPONSE_MEDIA_TYPE)


@blueprint.get("/federation/historical-keys")
def historical_keys() -> Response:
    """§8.7: the federation keys no longer in use, a signed ``application/jwk-set+jwt``."""
    return _jwt(_anchor().historical_keys(), JWK_SET_MEDIA_TYPE)


@blueprint.post("/federation/trust-mark-status")
def trust_mark_status() -> Response:
    """§8.4: the status of the ``trust_mark`` posted (``application/x-www-form-urlencoded``), as
    a signed ``trust-mark-status-response+jwt`` (§8.4.2), read afresh on every request."""
    values = request.form.getlist("trust_mark")
    if len(values) != 1 or not values[0]:
        raise FederationError("trust_mark is missing", message_en="Post one trust_mark.")
    return _jwt(_anchor().trust_marks.status(values[0]), STATUS_RESPONSE_MEDIA_TYPE)


@blueprint.get("/federation/trust-mark-list")
def trust_marked_entities() -> Response:
    """§8.5: the entities holding an active mark of ``trust_mark_type`` (``sub`` narrows);
    ``not_found`` (404) for a type this anchor does not issue (§8.9)."""
    trust_mark_type, sub = _required("trust_mark_type"), _optional("sub")
    return jsonify(_anchor().trust_marks.marked_entities(trust_mark_type, sub))


@blueprint.get("/federation/trust-mark")
def trust_mark() -> Response:
    """§8.6: the latest active mark of ``trust_mark_type`` about ``sub``,
    ``application/trust-mark+jwt``."""
    trust_mark_type, sub = _required("trust_mark_type"), _required("sub")
    return _jwt(_anchor().trust_marks.current(trust_mark_type, sub), TRUST_MARK_MEDIA_TYPE)


# --- the admin API ------------------------------------------------------------------------------


@admin_blueprint.before_request
def _authenticate() -> None:
    """The admin API's bearer tokens (RFC 6750 §2.1); reads for every role, writes for the
    platform, and for the operator the writes of :data:`OPERATOR_WRITES` (the subordinate of a
    region or portal it manages: :func:`_operator_owns`, :func:`_check_bound`)."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    principal: Principal | None = None
    if scheme.lower() == "bearer":
        principal = Principals.from_settings(current_services().settings).authenticate(token)
    if principal is None:
        raise InvalidToken()
    if request.method in ("GET", "HEAD"):
        authorize(principal, Operation.READ_REGISTRATIONS)
    elif principal.role is Role.OPERATOR and request.endpoint in OPERATOR_WRITES:
        authorize(principal, Operation.WRITE_REGISTRATIONS)
    elif principal.role is not Role.PLATFORM:
        raise RoleRefused(principal.role, "change federation subordinates")
    g.admin_principal = principal


@admin_blueprint.after_request
def _challenge(response: Response) -> Response:
    if response.status_code == 401:
        response.headers.setdefault("WWW-Authenticate", 'Bearer realm="tongxing-admin"')
    return response


def _kind(kind: str) -> SubordinateKind:
    if kind not in KINDS:
        raise RegistrationNotFound("federation subordinate kind", kind[:16])
    return kind  # type: ignore[return-value]


def _marked_kind(kind: str) -> SubordinateKind:
    """A kind trust marks are issued to: a region or a portal (not an intermediate, I20)."""
    if kind == "intermediate":
        raise RegistrationNotFound("federation subordinate kind", kind)
    return _kind(kind)


def _view(record: FederationSubordinate) -> dict[str, Any]:
    view = {
        "kind": record.kind,
        "key": record.key,
        "entity_id": record.entity_id,
        "jwks": record.jwks,
        "metadata_policy": record.metadata_policy,
        "created_at": record.created_at.isoformat(),
        "updated_at": record.updated_at.isoformat(),
    }
    if record.kind == "intermediate":
        view["constraints"] = record.constraints
    return view


@admin_blueprint.get("/subordinates")
def list_records() -> Response:
    return jsonify({"items": [_view(item) for item in _store().federation_subordinates()]})


@admin_blueprint.get("/subordinates/<kind>/<key>")
def get_record(kind: str, key: str) -> Response:
    record = _store().federation_subordinate(_kind(kind), key)
    if record is None:
        raise RegistrationNotFound("federation subordinate", f"{kind}/{key[:64]}")
    return jsonify(_view(record))


@admin_blueprint.put("/subordinates/<kind>/<key>")
def put_record(kind: str, key: str) -> tuple[Response, int]:
    """Record the subordinate of region or portal ``key``. The platform records any; an operator
    only that of a registration it manages (the resource named in the query, as for a GET or
    DELETE of the registration), with an entity id bound to that registration."""
    services = current_services()
    checked = _kind(kind)
    principal: Principal = g.admin_principal
    body = request.get_json(silent=True)
    registered: Region | Portal | None
    if principal.role is Role.OPERATOR:
        if checked == "intermediate":  # I20: the platform's alone, whatever the operator runs
            raise RoleRefused(principal.role, "record an intermediate")
        registered = _operator_owns(principal, checked, key)
        if isinstance(body, dict):
            _check_bound(registered, body.get("entity_id"))
    elif checked == "intermediate":
        # I20: a province's federation entity, its key a name of the platform's choosing in
        # the form of a region code; nothing else is registered for it.
        if re.fullmatch(CODE_PATTERN, key) is None:
            raise RegistrationNotFound(checked, key[:64])
        registered = None
    else:
        registered = (
            services.registry.region(key) if checked == "region" else services.registry.portal(key)
        )
        # A18, §12.1: with automatic registration, a portal joins as a subordinate alone (its
        # key a name of the platform's choosing, in the form of a client id); it signs in by
        # entity id.
        automatic = (
            checked == "portal"
            and (
                services.settings.federation_automatic_registration
                or services.settings.federation_explicit_registration  # X19: §12.2 alike
            )
            and re.fullmatch(CLIENT_ID_PATTERN, key) is not None
        )
        if registered is None and not automatic:
            raise RegistrationNotFound(checked, key[:64])
    if not isinstance(body, dict):
        raise InvalidDocument([{"field": "", "message": "the body must be a JSON object"}])
    before = services.store.federation_subordinate(checked, key)
    record = _anchor().register(checked, key, body)
    _audit("put", checked, key, before, record)
    return jsonify(_view(record)), 200


@admin_blueprint.delete("/subordinates/<kind>/<key>")
def delete_record(kind: str, key: str) -> tuple[str, int]:
    """Remove the subordinate: the platform any, an operator that of a registration it
    manages (so it must go before the registration does)."""
    checked = _kind(kind)
    principal: Principal = g.admin_principal
    if principal.role is Role.OPERATOR:
        if checked == "intermediate":  # I20: the platform's alone
            raise RoleRefused(principal.role, "remove an intermediate")
        _operator_owns(principal, checked, key)
    before = _store().federation_subordinate(checked, key)
    if before is None or not _store().delete_federation_subordinate(checked, key):
        raise RegistrationNotFound("federation subordinate", f"{kind}/{key[:64]}")
    _audit("delete", checked, key, before, None)
    return "", 204


def _operator_owns(principal: Principal, kind: SubordinateKind, key: str) -> Region | Portal:
    """The registration behind the subordinate an operator writes, if it manages it
    (THREAT_MODEL row 1; the rule of a registration's DELETE, :func:`may_delete`): read from
    the store, not the registry's short-lived copy. The ownership of an operator's subordinate
    is its registration's: nothing more is recorded, so it cannot drift from it."""
    registry = current_services().registry
    stored = registry.stored_region(key) if kind == "region" else registry.stored_portal(key)
    if stored is None:
        raise RegistrationNotFound(kind, key[:64])
    if not may_delete(principal, stored.value.managed_by, resource_of(principal, request.args)):
        raise ManagedByAnother(kind, key[:64])
    return stored.value


def _check_bound(registered: Region | Portal, entity_id: Any) -> None:
    """What an operator may claim (THREAT_MODEL row 1: the anchor vouches only for a tenant's
    own entity). A region's entity id is its registered issuer: an OP's issuer MUST be its
    entity identifier (OpenID Federation 1.0 §5.1.3). A portal's entity id is at the origin of
    one of its registered redirect URIs (RFC 6454 §4), the host the tenant already serves."""
    if not isinstance(entity_id, str):
        return  # TrustAnchor.register names what is wrong with it
    if isinstance(registered, Region):
        if entity_id != registered.issuer:
            raise InvalidDocument(
                [
                    {
                        "field": "entity_id",
                        "message": "must be the region's registered issuer (OpenID Federation "
                        "1.0 §5.1.3)",
                    }
                ]
            )
        return
    origin = _origin(entity_id)
    if origin is None or origin not in {_origin(uri) for uri in registered.redirect_uris}:
        raise InvalidDocument(
            [
                {
                    "field": "entity_id",
                    "message": "must be at the origin of one of the portal's registered "
                    "redirect URIs",
                }
            ]
        )


def _origin(uri: str) -> tuple[str, str, int] | None:
    """The origin of an http(s) URI (RFC 6454 §4): scheme, host and port, in lower case and
    with the default port filled in; ``None`` for anything else (a native app's scheme)."""
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http") or not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), port or (443 if scheme == "https" else 80)


def _audit(
    action: str,
    kind: SubordinateKind,
    key: str,
    before: FederationSubordinate | None,
    after: FederationSubordinate | None,
) -> None:
    """THREAT_MODEL row 9: every admin change leaves an audit record (gateway.observe)."""
    _emit(
        action,
        f"federation_{kind}",
        key,
        None if before is None else _view(before),
        None if after is None else _view(after),
    )


def _emit(
    action: str,
    target_kind: str,
    target: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> None:
    principal: Principal = g.admin_principal
    current_services().events.emit(
        AdminChange(
            principal=principal.name,
            role=principal.role.value,
            action=action,
            target_kind=target_kind,
            target=target,
            before=None if before is None else redact(before),
            after=None if after is None else redact(after),
        )
    )


# --- trust marks (§7): the platform's say-so ----------------------------------------------------


def _mark_view(mark: FederationTrustMark) -> dict[str, Any]:
    anchor = _anchor()
    return {
        "jti": mark.jti,
        "trust_mark_type": mark.trust_mark_type,
        "kind": mark.kind,
        "key": mark.key,
        "sub": mark.entity_id,
        "issued_at": mark.issued_at.isoformat(),
        "expires_at": None if mark.expires_at is None else mark.expires_at.isoformat(),
        "revoked_at": None if mark.revoked_at is None else mark.revoked_at.isoformat(),
        "status": anchor.trust_marks.status_of(mark, anchor.clock()),
    }


@admin_blueprint.get("/trust-marks/<kind>/<key>")
def list_trust_marks(kind: str, key: str) -> Response:
    """Every trust mark issued to the subordinate, with its status; ``trust_mark_type``
    narrows."""
    marks = _store().federation_trust_marks(
        _marked_kind(kind), key, request.args.get("trust_mark_type")
    )
    return jsonify({"items": [_mark_view(mark) for mark in marks]})


@admin_blueprint.put("/trust-marks/<kind>/<key>")
def put_trust_mark(kind: str, key: str) -> tuple[Response, int]:
    """The subordinate holds a mark of ``trust_mark_type`` (body), until ``expires_at`` or the
    type's lifetime: 201 with the new mark (``trust_mark``: its JWT), 200 when it held it."""
    checked = _marked_kind(kind)
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise InvalidDocument([{"field": "", "message": "the body must be a JSON object"}])
    anchor = _anchor()
    mark, created = anchor.trust_marks.issue(checked, key, body)
    view = _mark_view(mark)
    if created:
        _emit("issue", "federation_trust_mark", f"{kind}/{key}", None, view)
    return jsonify({**view, "trust_mark": anchor.trust_marks.token(mark)}), 201 if created else 200


@admin_blueprint.delete("/trust-marks/<kind>/<key>")
def revoke_trust_marks(kind: str, key: str) -> tuple[str, int]:
    """Revoke the subordinate's marks of ``?trust_mark_type=`` (at once: §8.4 answers
    ``revoked`` from this moment); 404 when it held none."""
    checked = _marked_kind(kind)
    trust_mark_type = request.args.get("trust_mark_type", "")
    before = [
        _mark_view(mark)
        for mark in _store().federation_trust_marks(checked, key, trust_mark_type)
        if mark.revoked_at is None
    ]
    if not trust_mark_type or not _anchor().trust_marks.revoke(checked, key, trust_mark_type):
        raise RegistrationNotFound("trust mark", f"{kind}/{key[:64]}")
    _emit("revoke", "federation_trust_mark", f"{kind}/{key}", {"marks": before}, None)
    return "", 204


def _store() -> Store:
    return current_services().store


__all__ = ["admin_blueprint", "blueprint"]
