"""The federation endpoints (OpenID Federation 1.0 §8, §9) and the subordinates' admin API.

Views parse and render; :class:`~gateway.federation.anchor.TrustAnchor` decides. Federation
errors are JSON objects with ``error`` and ``error_description`` (§8.9), whatever the caller
accepts. The admin endpoints take the admin API's bearer tokens (:mod:`gateway.admin.access`):
every role reads, only the platform writes (a subordinate's keys are the federation's trust).
"""

from __future__ import annotations

from typing import Any, Final, get_args

from flask import Blueprint, Response, g, jsonify, request

from gateway.admin.access import Operation, Principal, Principals, Role, authorize
from gateway.errors import (
    FederationError,
    FederationNotFound,
    FederationUnsupportedParameter,
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
from gateway.observe import AdminChange, redact
from gateway.services import current_services
from gateway.store.contract import Store
from gateway.store.contract.federation import FederationSubordinate, SubordinateKind
from tongxing_api.vocabulary import API_PATH

blueprint = Blueprint("federation", __name__)
admin_blueprint = Blueprint("federation_admin", __name__, url_prefix=f"{API_PATH}/federation")
KINDS: Final = get_args(SubordinateKind)
#: §8.2.1 parameters about trust marks this trust anchor cannot answer yet (it issues none).
_UNSUPPORTED_LIST_PARAMETERS: Final = ("trust_marked", "trust_mark_type")


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
    """§8.2: the subordinates' entity identifiers, of ``entity_type`` when given."""
    for name in _UNSUPPORTED_LIST_PARAMETERS:
        if name in request.args:
            raise FederationUnsupportedParameter(f"{name} is not supported")
    if request.args.get("intermediate") == "true":
        return jsonify([])  # the anchor has no intermediate subordinates
    return jsonify(_anchor().subordinate_ids(_optional("entity_type")))


@blueprint.get("/federation/resolve")
def resolve() -> Response:
    """§8.3: the resolved, policy-applied metadata of ``sub`` and its trust chain."""
    sub, anchor = _required("sub"), _required("trust_anchor")
    types = request.args.getlist("entity_type")
    return _jwt(_anchor().resolve(sub, anchor, types), RESOLVE_RESPONSE_MEDIA_TYPE)


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
    if registered is None:
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
    principal: Principal = g.admin_principal
    current_services().events.emit(
        AdminChange(
            principal=principal.name,
            role=principal.role.value,
            action=action,
            target_kind=f"federation_{kind}",
            target=key,
            before=None if before is None else redact(_view(before)),
            after=None if after is None else redact(_view(after)),
        )
    )


def _store() -> Store:
    return current_services().store


__all__ = ["admin_blueprint", "blueprint"]
