"""Admin API v1: regions and portals, bearer-token authenticated, described by OpenAPI 3.1.

``PUT`` creates or replaces (idempotent, what a reconciler wants); ``DELETE`` of something that
is not there answers 404 and changes nothing. Bad input gets 400 with one message per field.
Every token is a principal with a role (platform, operator, reader; :mod:`gateway.admin.access`);
a role that may not do something gets 403 ``insufficient_scope`` (RFC 6750 §3.1), and a
registration another owner manages gets 409 ``registration_taken``. The views only parse and
render: :class:`~gateway.admin.registrations.Registrations` decides.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import urlencode

from flask import Blueprint, Response, g, jsonify, request
from pydantic import BaseModel

from gateway.admin.access import (
    ROLE_DESCRIPTIONS,
    Operation,
    Principal,
    Principals,
    authorize,
    roles_for,
)
from gateway.admin.registrations import Registrations
from gateway.errors import (
    FieldError,
    InvalidDocument,
    InvalidPolicySet,
    InvalidToken,
    NoRoleAllowed,
    NoSecondFactor,
    SubjectNotFound,
)
from gateway.observe import AdminChange, FactorRemoved, PolicyReloaded, redact
from gateway.policy import PolicySetError, PolicySetInfo
from gateway.registry import (
    CLIENT_ID_PATTERN,
    CODE_PATTERN,
    PAGE_DEFAULT,
    PAGE_MAX,
    Portal,
    Region,
)
from gateway.services import current_services
from tongxing_api.vocabulary import API_PATH, RESOURCE_FIELDS

log = logging.getLogger(__name__)
blueprint = Blueprint("admin", __name__, url_prefix=API_PATH)
REALM: Final = "tongxing-admin"
REASON_MAX: Final = 500
"""The longest reason a help-desk reset may give (characters)."""

#: What each endpoint does; roles are checked against it before the view runs. An endpoint not
#: listed here is refused to everyone (fail closed), so a new view cannot forget its check.
OPERATIONS: Final[Mapping[str, Operation]] = {
    "admin.list_regions": Operation.READ_REGISTRATIONS,
    "admin.get_region": Operation.READ_REGISTRATIONS,
    "admin.put_region": Operation.WRITE_REGISTRATIONS,
    "admin.delete_region": Operation.WRITE_REGISTRATIONS,
    "admin.list_portals": Operation.READ_REGISTRATIONS,
    "admin.get_portal": Operation.READ_REGISTRATIONS,
    "admin.put_portal": Operation.WRITE_REGISTRATIONS,
    "admin.delete_portal": Operation.WRITE_REGISTRATIONS,
    "admin.get_policies": Operation.READ_POLICIES,
    "admin.reload_policies": Operation.RELOAD_POLICIES,
    "admin.reset_second_factor": Operation.RESET_SECOND_FACTOR,
    "admin.end_region_sessions": Operation.WRITE_REGISTRATIONS,
}
PUBLIC_ENDPOINTS: Final = frozenset({"admin.openapi"})


@blueprint.before_request
def _authenticate() -> None:
    """Bearer token (RFC 6750 §2.1) -> principal -> role check of the endpoint's operation."""
    if request.endpoint in PUBLIC_ENDPOINTS:
        return
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    principal = None
    if scheme.lower() == "bearer":
        principal = Principals.from_settings(current_services().settings).authenticate(token)
    if principal is None:
        raise InvalidToken()
    operation = OPERATIONS.get(request.endpoint or "")
    if operation is None:
        raise NoRoleAllowed(f"endpoint {request.endpoint!r} is not in OPERATIONS")
    authorize(principal, operation)
    g.admin_principal = principal


@blueprint.after_request
def _challenge(response: Response) -> Response:
    """RFC 6750 §3: a refused bearer token is answered with its challenge."""
    if response.status_code == 401:
        error = ', error="invalid_token"' if "Authorization" in request.headers else ""
        response.headers.setdefault("WWW-Authenticate", f'Bearer realm="{REALM}"{error}')
    elif response.status_code == 403:
        response.headers.setdefault(
            "WWW-Authenticate", f'Bearer realm="{REALM}", error="insufficient_scope"'
        )
    return response


def _principal() -> Principal:
    principal = g.get("admin_principal")
    if not isinstance(principal, Principal):  # _authenticate did not run: refuse, never guess
        raise InvalidToken("no principal on this request: _authenticate did not run")
    return principal


def _registrations() -> Registrations:
    services = current_services()
    return Registrations.for_settings(services.registry, services.settings)


def _body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise InvalidDocument([{"field": "", "message": "the body must be a JSON object"}])
    return data


def _query() -> dict[str, str]:
    return request.args.to_dict()


def region_view(region: Region) -> dict[str, Any]:
    """A region as the API shows it: never its client secret."""
    return region.model_dump(mode="json", exclude={"client_secret"})


def portal_view(portal: Portal) -> dict[str, Any]:
    return portal.model_dump(mode="json", exclude={"client_secret_hash"})


def _changed(
    action: str,
    target_kind: str,
    target: str,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
    reason: str | None = None,
) -> None:
    """Say what the principal changed (:class:`~gateway.observe.AdminChange`), once the change
    is stored: the documents as the API shows them (:func:`region_view`, :func:`portal_view`:
    no secret, no hash of one) and redacted again, so a field added later cannot leak one
    (THREAT_MODEL rows 8 and 9)."""
    principal = _principal()
    current_services().events.emit(
        AdminChange(
            principal=principal.name,
            role=principal.role.value,
            action=action,
            target_kind=target_kind,
            target=target,
            before=redact(before),
            after=redact(after),
            reason=reason,
        )
    )


def _stored_region(code: str) -> dict[str, Any] | None:
    stored = current_services().registry.stored_region(code)
    return region_view(stored.value) if stored is not None else None


def _stored_portal(client_id: str) -> dict[str, Any] | None:
    stored = current_services().registry.stored_portal(client_id)
    return portal_view(stored.value) if stored is not None else None


def _page_query(key_pattern: str) -> tuple[str | None, int]:
    """``after`` and ``limit`` of a listing (keyset pagination on the key): ``limit`` 1 to
    :data:`~gateway.registry.PAGE_MAX` (default :data:`~gateway.registry.PAGE_DEFAULT`),
    ``after`` a key of the kind listed; anything else is 400 with the field named (THREAT_MODEL
    row 7: a key no registration can have never reaches the store)."""
    errors: list[FieldError] = []
    raw_limit = request.args.get("limit")
    limit = PAGE_DEFAULT
    if raw_limit is not None:
        if raw_limit.isascii() and raw_limit.isdigit() and 1 <= int(raw_limit) <= PAGE_MAX:
            limit = int(raw_limit)
        else:
            errors.append({"field": "limit", "message": f"an integer from 1 to {PAGE_MAX}"})
    after = request.args.get("after")
    if after is not None and re.fullmatch(key_pattern, after) is None:
        errors.append({"field": "after", "message": "not a key of this listing"})
    if errors:
        raise InvalidDocument(errors)
    return after, limit


def _listing(items: list[dict[str, Any]], next_after: str | None, limit: int) -> Response:
    """A page as a JSON array (as before pagination), and, when more follow, the next page's
    URL in an RFC 8288 ``Link`` header (``rel="next"``, relative to this request's URL)."""
    response = jsonify(items)
    if next_after is not None:
        query = urlencode({"limit": limit, "after": next_after})
        response.headers["Link"] = f'<{request.path}?{query}>; rel="next"'
    return response


@blueprint.get("/regions")
def list_regions() -> Response:
    after, limit = _page_query(CODE_PATTERN)
    page = _registrations().regions(_principal(), after=after, limit=limit)
    return _listing([region_view(r) for r in page.items], page.next_after, limit)


@blueprint.get("/regions/<code>")
def get_region(code: str) -> Response:
    return jsonify(region_view(_registrations().region(_principal(), code, _query())))


@blueprint.put("/regions/<code>")
def put_region(code: str) -> tuple[Response, int]:
    before = _stored_region(code)
    region, created = _registrations().put_region(
        _principal(), code, _body(), current_services().clock()
    )
    # A replaced region may have a new realm behind it: fetch its metadata and keys afresh.
    current_services().regions.forget(region)
    _changed("put", "region", region.code, before, region_view(region))
    return jsonify(region_view(region)), 201 if created else 200


@blueprint.delete("/regions/<code>")
def delete_region(code: str) -> tuple[str, int]:
    before = _stored_region(code)
    _registrations().delete_region(_principal(), code, _query())
    _changed("delete", "region", code, before, None)
    return "", 204


@blueprint.delete("/regions/<code>/sessions")
def end_region_sessions(code: str) -> Response:
    """End every live SSO session the region signed in (THREAT_MODEL row 5), each with its
    grants, and tell each session's portals (Back-Channel Logout 1.0 §2.5): for a region
    disabled, compromised or withdrawn. Whoever may change the region may do it (an operator
    only for a region it manages, naming its resource in the query).
    """
    principal, services = _principal(), current_services()
    region = _registrations().region(principal, code, _query())
    ended = services.sessions.end_region(region.code, services.clock())
    _changed("end_sessions", "region", region.code, None, {"sessions_ended": ended})
    log.warning(
        "%d sessions of region %s ended by %s",
        ended,
        region.code,
        principal.name,
        extra={
            "event": "admin.region_sessions_ended",
            "principal": principal.name,
            "region": region.code,
            "ended": ended,
        },
    )
    return jsonify({"region": region.code, "ended": ended})


@blueprint.get("/portals")
def list_portals() -> Response:
    after, limit = _page_query(CLIENT_ID_PATTERN)
    page = _registrations().portals(_principal(), after=after, limit=limit)
    return _listing([portal_view(p) for p in page.items], page.next_after, limit)


@blueprint.get("/portals/<client_id>")
def get_portal(client_id: str) -> Response:
    return jsonify(portal_view(_registrations().portal(_principal(), client_id, _query())))


@blueprint.put("/portals/<client_id>")
def put_portal(client_id: str) -> tuple[Response, int]:
    """Create or replace a portal; its client secret is returned only by the call that set it."""
    before = _stored_portal(client_id)
    written = _registrations().put_portal(
        _principal(), client_id, _body(), current_services().clock()
    )
    _changed("put", "portal", written.portal.client_id, before, portal_view(written.portal))
    body = portal_view(written.portal)
    if written.client_secret is not None:
        body["client_secret"] = written.client_secret
    return jsonify(body), 201 if written.created else 200


@blueprint.delete("/portals/<client_id>")
def delete_portal(client_id: str) -> tuple[str, int]:
    before = _stored_portal(client_id)
    _registrations().delete_portal(_principal(), client_id, _query())
    _changed("delete", "portal", client_id, before, None)
    return "", 204


def _policy_view(info: PolicySetInfo) -> dict[str, Any]:
    return {
        "files": list(info.files),
        "policy_ids": list(info.policy_ids),
        "digest": info.digest,
        "generation": info.generation,
        "activated_by": info.activated_by,
        "activated_at": None if info.activated_at is None else info.activated_at.isoformat(),
        "loaded_at": info.loaded_at.isoformat(),
    }


@blueprint.get("/policies")
def get_policies() -> Response:
    """The active policy set of this process: its digest (SHA-256 over the canonical form of
    its documents) and its generation in the store, the same in every process once they have
    polled (:mod:`gateway.policy.stored`)."""
    return jsonify(_policy_view(current_services().policy.info))


@blueprint.post("/policies/reload")
def reload_policies() -> Response:
    """Validate the policy files of this process and activate them everywhere: written to the
    store as the next generation, which every worker and replica activates within a few
    seconds (:data:`gateway.policy.POLL_INTERVAL`). An invalid set is refused whole (422),
    nothing is written, and the last good set stays active. Emits
    :class:`~gateway.observe.PolicyReloaded` either way, with the principal, the digest of the
    set (of the refused one when its files could be read) and the outcome."""
    principal = _principal()
    services = current_services()
    try:
        info = services.policy.reload(principal.name)
    except PolicySetError as exc:
        services.events.emit(
            PolicyReloaded(
                principal=principal.name,
                digest=exc.digest or "",
                outcome="refused",
                generation=services.policy.info.generation,
            )
        )
        raise InvalidPolicySet(
            [{"file": file, "message": message} for file, message in exc.problems],
            _policy_view(services.policy.info),
        ) from None
    services.events.emit(
        PolicyReloaded(
            principal=principal.name,
            digest=info.digest,
            outcome="activated",
            generation=info.generation,
        )
    )
    return jsonify(_policy_view(info))


def _reset_reason(body: Mapping[str, Any]) -> str:
    """The help desk's reason: 1 to :data:`REASON_MAX` characters of text, no control ones."""
    reason = body.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        message = "a reason is required (why the factor is reset, e.g. the ticket number)"
        raise InvalidDocument([{"field": "reason", "message": message}])
    reason = reason.strip()
    if len(reason) > REASON_MAX:
        message = f"at most {REASON_MAX} characters"
        raise InvalidDocument([{"field": "reason", "message": message}])
    if any(unicodedata.category(ch) == "Cc" for ch in reason):
        message = "no control characters (line breaks included)"
        raise InvalidDocument([{"field": "reason", "message": message}])
    return reason


@blueprint.delete("/subjects/<subject_id>/second-factor")
def reset_second_factor(subject_id: str) -> tuple[str, int]:
    """The help desk removes a person's factor (and recovery codes), with a reason.

    For a person who lost their authenticator (NIST SP 800-63B §6.1.2.3: after the help desk
    proved who they are, outside this API). The person then binds a new one under the rule of
    §6.1.2.1 (:class:`gateway.mfa.BindingRule`). Every call leaves a structured log line with
    the principal, the subject, the reason and the outcome, for the audit trail.
    """
    principal = _principal()
    services = current_services()
    outcome = "refused_no_reason"
    try:
        reason = _reset_reason(_body())
        outcome = "unknown_subject"
        if len(subject_id) > 128 or services.store.get_subject(subject_id) is None:
            raise SubjectNotFound(f"no subject {subject_id[:40]!r}")
        outcome = "removed" if services.totp.remove(subject_id) else "no_factor"
        if outcome == "no_factor":
            raise NoSecondFactor(f"subject {subject_id} has no second factor")
        # A session the factor raised to loa2 must not outlive it (THREAT_MODEL row 4): the
        # person signs in again, with the new factor once bound.
        services.sessions.end_subject(subject_id, services.clock())
        services.events.emit(
            FactorRemoved(subject=subject_id, principal=principal.name, reason=reason)
        )
        _changed("reset_second_factor", "subject", subject_id, reason=reason)
    finally:
        log.log(
            logging.INFO if outcome == "removed" else logging.WARNING,
            "second factor reset by %s for subject %s: %s",
            principal.name,
            subject_id[:128],
            outcome,
            extra={
                "event": "admin.second_factor_reset",
                "principal": principal.name,
                "role": principal.role.value,
                "subject": subject_id[:128],
                "reason": reason if outcome != "refused_no_reason" else None,
                "outcome": outcome,
            },
        )
    return "", 204


def _schema(model: type[BaseModel], drop: set[str]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name in drop:
        schema.get("properties", {}).pop(name, None)
        if name in schema.get("required", []):
            schema["required"].remove(name)
    return schema


def _roles(operation: Operation) -> dict[str, Any]:
    return {"x-roles": roles_for(operation)}


def _error_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


RESOURCE_PARAMETERS: Final = [
    {
        "name": name,
        "in": "query",
        "required": False,
        "schema": {"type": "string"},
        "description": (
            f"operator callers: the {name} of the custom resource they act for (kind, namespace "
            "and name required on DELETE); ignored for other roles"
        ),
    }
    for name in RESOURCE_FIELDS
]


def _operations(tag: str, key: str, schema: str) -> dict[str, Any]:
    ref = {"$ref": f"#/components/schemas/{schema}"}
    body = {"content": {"application/json": {"schema": ref}}}
    refused = {
        "401": {"$ref": "#/components/responses/Unauthorized"},
        "403": {"$ref": "#/components/responses/Forbidden"},
    }
    read, write = Operation.READ_REGISTRATIONS, Operation.WRITE_REGISTRATIONS
    param = [{"name": key, "in": "path", "required": True, "schema": {"type": "string"}}]
    return {
        f"/{tag}": {
            "get": {
                "tags": [tag],
                "summary": f"a page of {tag}, by {key} (an operator: only those it manages)",
                "description": (
                    f"Keyset pagination on {key}: the answer is a JSON array of at most `limit` "
                    f"{tag} whose {key} sorts after `after`, in order. When more follow, the "
                    'answer has an RFC 8288 `Link` header with `rel="next"` (a URL relative to '
                    "the request's, with the same `limit` and the last key as `after`); the "
                    "last page has none. A client follows it until it is absent. An operator "
                    "is given only the registrations it manages (filtered by the store)."
                ),
                "parameters": [
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "schema": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": PAGE_MAX,
                            "default": PAGE_DEFAULT,
                        },
                        "description": "the most items of this page",
                    },
                    {
                        "name": "after",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string"},
                        "description": (
                            f"the {key} the page starts after (exclusive); none: the first page"
                        ),
                    },
                ],
                **_roles(read),
                "responses": {
                    "200": {
                        "description": "one page",
                        "headers": {
                            "Link": {
                                "description": (
                                    'RFC 8288: `<URL>; rel="next"` when more follow, else absent'
                                ),
                                "schema": {"type": "string"},
                            }
                        },
                        "content": {
                            "application/json": {"schema": {"type": "array", "items": ref}}
                        },
                    },
                    "400": {"$ref": "#/components/responses/Invalid"},
                    **refused,
                },
            }
        },
        f"/{tag}/{{{key}}}": {
            "parameters": param,
            "get": {
                "tags": [tag],
                "parameters": RESOURCE_PARAMETERS,
                **_roles(read),
                "responses": {
                    "200": {"description": "found", **body},
                    "400": {"$ref": "#/components/responses/Invalid"},
                    **refused,
                    "404": {"description": "not found"},
                },
            },
            "put": {
                "tags": [tag],
                "description": (
                    "Create or replace. The gateway records the caller as managed_by.principal; "
                    "an operator names its resource in managed_by (kind, namespace, name, uid)."
                ),
                **_roles(write),
                "requestBody": {"required": True, **body},
                "responses": {
                    "200": {"description": "replaced", **body},
                    "201": {"description": "created", **body},
                    "400": {"$ref": "#/components/responses/Invalid"},
                    **refused,
                    "409": {"$ref": "#/components/responses/Conflict"},
                },
            },
            "delete": {
                "tags": [tag],
                "description": (
                    "The platform deletes any registration; an operator only one it manages, "
                    "naming its resource in the query."
                ),
                "parameters": RESOURCE_PARAMETERS,
                **_roles(write),
                "responses": {
                    "204": {"description": "deleted"},
                    "400": {"$ref": "#/components/responses/Invalid"},
                    **refused,
                    "404": {"description": "not found"},
                    "409": {"$ref": "#/components/responses/Conflict"},
                },
            },
        },
    }


def _policy_operations() -> dict[str, Any]:
    refused = {
        "401": {"$ref": "#/components/responses/Unauthorized"},
        "403": {"$ref": "#/components/responses/Forbidden"},
    }
    return {
        "/policies": {
            "get": {
                "tags": ["policies"],
                "summary": "the active policy set",
                **_roles(Operation.READ_POLICIES),
                "responses": {"200": {"description": "the active set"}, **refused},
            }
        },
        "/policies/reload": {
            "post": {
                "tags": ["policies"],
                "summary": "validate the policy files and activate them in every replica",
                **_roles(Operation.RELOAD_POLICIES),
                "responses": {
                    "200": {"description": "activated"},
                    **refused,
                    "422": {"description": "refused whole; the previous set stays active"},
                },
            }
        },
    }


def _region_sessions_operations() -> dict[str, Any]:
    ended = {
        "type": "object",
        "properties": {"region": {"type": "string"}, "ended": {"type": "integer"}},
    }
    return {
        "/regions/{code}/sessions": {
            "parameters": [
                {"name": "code", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "delete": {
                "tags": ["regions"],
                "summary": "end every live SSO session the region signed in",
                "description": (
                    "Each session ends with its grants revoked, and its portals get logout "
                    "tokens (failed deliveries are retried). For a region disabled or withdrawn; "
                    "an operator names its resource in the query, as for a DELETE of the region."
                ),
                "parameters": RESOURCE_PARAMETERS,
                **_roles(Operation.WRITE_REGISTRATIONS),
                "responses": {
                    "200": {
                        "description": "how many sessions were ended",
                        "content": {"application/json": {"schema": ended}},
                    },
                    "400": {"$ref": "#/components/responses/Invalid"},
                    "401": {"$ref": "#/components/responses/Unauthorized"},
                    "403": {"$ref": "#/components/responses/Forbidden"},
                    "404": {"description": "no such region"},
                },
            },
        }
    }


def _second_factor_operations() -> dict[str, Any]:
    reason = {
        "type": "object",
        "required": ["reason"],
        "additionalProperties": False,
        "properties": {
            "reason": {
                "type": "string",
                "minLength": 1,
                "maxLength": REASON_MAX,
                "description": "why (e.g. the help-desk ticket); logged for the audit trail",
            }
        },
    }
    return {
        "/subjects/{subject_id}/second-factor": {
            "parameters": [
                {"name": "subject_id", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "delete": {
                "tags": ["second factors"],
                "summary": "help-desk reset: remove a person's TOTP factor and recovery codes",
                "description": (
                    "For a person who lost their authenticator, after the help desk proved who "
                    "they are (NIST SP 800-63B §6.1.2.3). The person binds a new one after a "
                    "fresh region sign-in at loa2 (§6.1.2.1). Logged with principal, subject, "
                    "reason and outcome."
                ),
                **_roles(Operation.RESET_SECOND_FACTOR),
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": reason}},
                },
                "responses": {
                    "204": {"description": "removed"},
                    "400": {"$ref": "#/components/responses/Invalid"},
                    "401": {"$ref": "#/components/responses/Unauthorized"},
                    "403": {"$ref": "#/components/responses/Forbidden"},
                    "404": _error_response(
                        "unknown_subject, or no_second_factor (nothing was changed)"
                    ),
                },
            },
        }
    }


def _roles_description() -> str:
    lines = [
        "Every call but this document needs a bearer token; the token is a principal with a role.",
        "",
    ]
    lines.extend(f"- `{role}`: {text}." for role, text in ROLE_DESCRIPTIONS.items())
    lines += [
        "",
        "Each operation lists the roles allowed in `x-roles`; any other role gets 403 "
        "`insufficient_scope` (RFC 6750 §3.1). Each registration records its owner in "
        "`managed_by`; a PUT over, or an operator's DELETE of, a registration another owner "
        "manages gets 409 `registration_taken` and changes nothing.",
    ]
    return "\n".join(lines)


def openapi_document() -> dict[str, Any]:
    """OpenAPI 3.1 for the admin API, with the request schemas generated from the models."""
    region = _schema(Region, set())
    portal = _schema(Portal, {"client_secret_hash"})
    portal["properties"]["client_secret"] = {
        "type": "string",
        "minLength": 32,
        "writeOnly": True,
        "description": (
            "Optional; generated and returned once when absent. Refused for a native app "
            "(RFC 8252 §8.5)."
        ),
    }
    portal["properties"]["application_type"]["description"] = (
        "web (the default) or native (OIDC Dynamic Client Registration §2). A native app is a "
        "public client (token_endpoint_auth_method none, no secret, PKCE S256 required); its "
        "redirect URIs may be loopback on 127.0.0.1 or [::1] (any port at /authorize: RFC 8252 "
        "§7.3), a private-use scheme in reverse-domain form (cn.gov.zj.zlb:/oauth2redirect, "
        "§7.1) or claimed https (§7.2); localhost is refused (§8.3). A web portal's redirect "
        "URIs are https (http on loopback) and compared exactly, port included."
    )
    schemas: dict[str, Any] = {"Region": region, "Portal": portal}
    for model_schema in (region, portal):
        schemas.update(model_schema.pop("$defs", {}))
    if "ManagedBy" in schemas:
        schemas["ManagedBy"]["properties"]["principal"]["readOnly"] = True
        schemas["ManagedBy"]["description"] = (
            "The owner of a registration. principal is set by the gateway from the caller's "
            "token (one in the body is overwritten); the same owner is the same principal, "
            "kind, namespace and name (a new uid takes over)."
        )
    error = {
        "type": "object",
        "properties": {
            "error": {"type": "string"},
            "error_description": {"type": "string"},
            "fields": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
                },
            },
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Tongxing admin API",
            "version": "v1",
            "description": _roles_description(),
        },
        "servers": [{"url": API_PATH}],
        "security": [{"bearer": []}],
        "paths": {
            **_operations("regions", "code", "Region"),
            **_operations("portals", "client_id", "Portal"),
            **_policy_operations(),
            **_second_factor_operations(),
            **_region_sessions_operations(),
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {**schemas, "Error": error},
            "responses": {
                "Invalid": _error_response("invalid document or query (see fields)"),
                "Unauthorized": {"description": "missing or unknown bearer token"},
                "Forbidden": _error_response(
                    "insufficient_scope: the caller's role may not do this, or (an operator) "
                    "another owner manages the registration"
                ),
                "Conflict": _error_response(
                    "registration_taken: another owner manages the registration, or it changed "
                    "meanwhile; nothing was changed"
                ),
            },
        },
    }


@blueprint.get("/openapi.json")
def openapi() -> Response:
    return jsonify(openapi_document())
