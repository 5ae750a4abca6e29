"""The federation endpoints (OpenID Federation 1.0 §8, §9) and the subordinates' admin API.

Views parse and render; :class:`~gateway.federation.anchor.TrustAnchor` decides. Federation
errors are JSON objects with ``error`` and ``error_description`` (§8.9), whatever the caller
accepts. The admin endpoints take the admin API's bearer tokens (:mod:`gateway.admin.access`):
every role reads, only the platform writes (a subordinate's keys are the federation's trust, and
a trust mark is the platform's say-so).
"""

from __future__ import annotations

import re
from typing import Any, Final, get_args

from flask import Blueprint, Response, g, jsonify, request

from gateway.admin.access import Operation, Principal, Principals, Role, authorize
from gateway.errors import (
    FederationError,
    FederationNotFound,
    InvalidDocument,
    InvalidToken,
    RegistrationNotFound,
    RoleRefused,
)
from gateway.federation.anchor import TrustAnchor
from gateway.federation.statements import (
    ENTITY_STATEMENT_MEDIA_TYPE,
    RESOLVE_RESPONSE_MEDIA_TYPE,
    WELL_KNOWN_PATH,
)
from gateway.federation.trust_marks import STATUS_RESPONSE_MEDIA_TYPE, TRUST_MARK_MEDIA_TYPE
from gateway.observe import AdminChange, redact
from gateway.registry import CLIENT_ID_PATTERN
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


@blueprint.get("/federation/fetch")
def fetch() -> Response:
    """§8.1: the subordinate statement about ``sub``."""
    sub = _required("sub")
    return _jwt(_anchor().subordinate_statement(sub), ENTITY_STATEMENT_MEDIA_TYPE)


@blueprint.get("/federation/list")
def list_subordinates() -> Response:
    """§8.2: the subordinates' entity identifiers, of ``entity_type`` when given; with
    ``trust_marked=true`` only those holding an active trust mark, with ``trust_mark_type`` only
    those holding an active mark of that type (§8.2.1)."""
    if request.args.get("intermediate") == "true":
        return jsonify([])  # the anchor has no intermediate subordinates
    anchor = _anchor()
    ids = anchor.subordinate_ids(_optional("entity_type"))
    trust_marked = _optional("trust_marked")
    if trust_marked not in (None, "true", "false"):
        raise FederationError(
            "trust_marked must be true or false", message_en="trust_marked is true or false."
        )
    trust_mark_type = _optional("trust_mark_type")
    if trust_marked == "true" or trust_mark_type is not None:
        marked = {mark.entity_id for mark in anchor.trust_marks.active(trust_mark_type)}
        ids = [entity_id for entity_id in ids if entity_id in marked]
    return jsonify(ids)


@blueprint.get("/federation/resolve")
def resolve() -> Response:
    """§8.3: the resolved, policy-applied metadata of ``sub`` and its trust chain."""
    sub, anchor = _required("sub"), _required("trust_anchor")
    types = request.args.getlist("entity_type")
    return _jwt(_anchor().resolve(sub, anchor, types), RESOLVE_RESPONSE_MEDIA_TYPE)


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
    """§8.5: the entities holding an active mark of ``trust_mark_type`` (``sub`` narrows)."""
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
    platform."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    principal: Principal | None = None
    if scheme.lower() == "bearer":
        principal = Principals.from_settings(current_services().settings).authenticate(token)
    if principal is None:
        raise InvalidToken()
    if request.method in ("GET", "HEAD"):
        authorize(principal, Operation.READ_REGISTRATIONS)
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


def _view(record: FederationSubordinate) -> dict[str, Any]:
    return {
        "kind": record.kind,
        "key": record.key,
        "entity_id": record.entity_id,
        "jwks": record.jwks,
        "metadata_policy": record.metadata_policy,
        "created_at": record.created_at.isoformat(),
        "updated_at": record.updated_at.isoformat(),
    }


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
    services = current_services()
    checked = _kind(kind)
    registered = (
        services.registry.region(key) if checked == "region" else services.registry.portal(key)
    )
    # A18, §12.1: with automatic registration, a portal joins as a subordinate alone (its key a
    # name of the platform's choosing, in the form of a client id); it signs in by entity id.
    automatic = (
        checked == "portal"
        and services.settings.federation_automatic_registration
        and re.fullmatch(CLIENT_ID_PATTERN, key) is not None
    )
    if registered is None and not automatic:
        raise RegistrationNotFound(checked, key[:64])
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise InvalidDocument([{"field": "", "message": "the body must be a JSON object"}])
    before = services.store.federation_subordinate(checked, key)
    record = _anchor().register(checked, key, body)
    _audit("put", checked, key, before, record)
    return jsonify(_view(record)), 200


@admin_blueprint.delete("/subordinates/<kind>/<key>")
def delete_record(kind: str, key: str) -> tuple[str, int]:
    checked = _kind(kind)
    before = _store().federation_subordinate(checked, key)
    if before is None or not _store().delete_federation_subordinate(checked, key):
        raise RegistrationNotFound("federation subordinate", f"{kind}/{key[:64]}")
    _audit("delete", checked, key, before, None)
    return "", 204


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
    marks = _store().federation_trust_marks(_kind(kind), key, request.args.get("trust_mark_type"))
    return jsonify({"items": [_mark_view(mark) for mark in marks]})


@admin_blueprint.put("/trust-marks/<kind>/<key>")
def put_trust_mark(kind: str, key: str) -> tuple[Response, int]:
    """The subordinate holds a mark of ``trust_mark_type`` (body), until ``expires_at`` or the
    type's lifetime: 201 with the new mark (``trust_mark``: its JWT), 200 when it held it."""
    checked = _kind(kind)
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
    checked = _kind(kind)
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
