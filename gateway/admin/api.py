"""Admin API v1: regions and portals, bearer-token authenticated, described by OpenAPI 3.1.

``PUT`` creates or replaces (idempotent, what a reconciler wants); ``DELETE`` of something that
is not there answers 404 and changes nothing. Bad input gets 400 with one message per field.
"""

from __future__ import annotations

import hmac
from datetime import UTC, datetime
from typing import Any, TypeVar

from flask import Blueprint, Response, jsonify, request
from pydantic import BaseModel, ValidationError

from gateway.errors import GatewayError
from gateway.policy import PolicySetError, PolicySetInfo
from gateway.registry import AuthMethod, Portal, Region, hash_secret, new_client_secret
from gateway.services import current_services

blueprint = Blueprint("admin", __name__, url_prefix="/admin/v1")
M = TypeVar("M", bound=BaseModel)
SECRET_METHODS = {AuthMethod.CLIENT_SECRET_BASIC.value, AuthMethod.CLIENT_SECRET_POST.value}


def _unauthorized() -> GatewayError:
    return GatewayError(
        "invalid_token",
        "未授权",
        "Unauthorized",
        "需要有效的管理令牌。",
        "A valid admin bearer token is required.",
        status=401,
    )


@blueprint.before_request
def _authenticate() -> None:
    if request.endpoint == "admin.openapi":
        return
    expected = current_services().settings.admin_token.get_secret_value()
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), expected.encode()):
        raise _unauthorized()


def _body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise _invalid([{"field": "", "message": "the body must be a JSON object"}])
    return data


def _invalid(fields: list[dict[str, str]]) -> GatewayError:
    return GatewayError(
        "invalid_request",
        "请求无效",
        "Invalid request",
        "提交的内容有误，请检查各字段。",
        "The submitted document is invalid; see fields.",
        status=400,
        details={"fields": fields},
    )


def _validate(model: type[M], data: dict[str, Any]) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _invalid(
            [
                {"field": ".".join(str(part) for part in error["loc"]), "message": error["msg"]}
                for error in exc.errors(include_input=False, include_url=False)
            ]
        ) from None


def _key_matches(data: dict[str, Any], name: str, key: str) -> None:
    if data.setdefault(name, key) != key:
        raise _invalid([{"field": name, "message": f"must equal the key in the URL ({key})"}])


def _not_found(what: str, key: str) -> GatewayError:
    return GatewayError(
        "not_found",
        "不存在",
        "Not found",
        f"{what} {key} 不存在。",
        f"No {what} {key}.",
        status=404,
    )


def region_view(region: Region) -> dict[str, Any]:
    """A region as the API shows it: never its client secret."""
    return region.model_dump(mode="json", exclude={"client_secret"})


def portal_view(portal: Portal) -> dict[str, Any]:
    return portal.model_dump(mode="json", exclude={"client_secret_hash"})


@blueprint.get("/regions")
def list_regions() -> Response:
    return jsonify([region_view(r) for r in current_services().registry.regions()])


@blueprint.get("/regions/<code>")
def get_region(code: str) -> Response:
    region = current_services().registry.region(code)
    if region is None:
        raise _not_found("region", code)
    return jsonify(region_view(region))


@blueprint.put("/regions/<code>")
def put_region(code: str) -> tuple[Response, int]:
    data = _body()
    _key_matches(data, "code", code)
    services = current_services()
    region, created = services.registry.put_region(_validate(Region, data), datetime.now(UTC))
    # A replaced region may have a new realm behind it: fetch its metadata and keys afresh.
    services.regions.forget(region)
    return jsonify(region_view(region)), 201 if created else 200


@blueprint.delete("/regions/<code>")
def delete_region(code: str) -> tuple[str, int]:
    if not current_services().registry.delete_region(code):
        raise _not_found("region", code)
    return "", 204


@blueprint.get("/portals")
def list_portals() -> Response:
    return jsonify([portal_view(p) for p in current_services().registry.portals()])


@blueprint.get("/portals/<client_id>")
def get_portal(client_id: str) -> Response:
    portal = current_services().registry.portal(client_id)
    if portal is None:
        raise _not_found("portal", client_id)
    return jsonify(portal_view(portal))


@blueprint.put("/portals/<client_id>")
def put_portal(client_id: str) -> tuple[Response, int]:
    """Create or replace a portal.

    A secret-authenticated portal keeps its secret across replacements unless ``client_secret``
    is given; a new one is generated when it has none. The secret is returned only by the call
    that set it, and only its hash is stored.
    """
    data = _body()
    _key_matches(data, "client_id", client_id)
    data.pop("client_secret_hash", None)
    secret = data.pop("client_secret", None)
    if secret is not None and (not isinstance(secret, str) or len(secret) < 32):
        raise _invalid([{"field": "client_secret", "message": "at least 32 characters"}])
    registry = current_services().registry
    existing = registry.portal(client_id)
    method = data.get("token_endpoint_auth_method", AuthMethod.CLIENT_SECRET_BASIC.value)
    issued: str | None = None
    if method in SECRET_METHODS:
        if secret is None and existing is not None and existing.client_secret_hash:
            data["client_secret_hash"] = existing.client_secret_hash
        else:
            issued = secret or new_client_secret()
            data["client_secret_hash"] = hash_secret(issued)
    portal, created = registry.put_portal(_validate(Portal, data), datetime.now(UTC))
    body = portal_view(portal)
    if issued is not None:
        body["client_secret"] = issued
    return jsonify(body), 201 if created else 200


@blueprint.delete("/portals/<client_id>")
def delete_portal(client_id: str) -> tuple[str, int]:
    if not current_services().registry.delete_portal(client_id):
        raise _not_found("portal", client_id)
    return "", 204


def _policy_view(info: PolicySetInfo) -> dict[str, Any]:
    return {
        "files": list(info.files),
        "policy_ids": list(info.policy_ids),
        "digest": info.digest,
        "loaded_at": info.loaded_at.isoformat(),
    }


@blueprint.get("/policies")
def get_policies() -> Response:
    """The active policy set."""
    return jsonify(_policy_view(current_services().policy.info))


@blueprint.post("/policies/reload")
def reload_policies() -> Response | tuple[Response, int]:
    """Validate and activate the policy files; an invalid set is refused whole (422) and the
    last good set stays active. Each replica reloads its own copy."""
    try:
        info = current_services().policy.reload()
    except PolicySetError as exc:
        body = {
            "error": "invalid_policy_set",
            "error_description": "the policy set was refused; the previous set stays active",
            "problems": [{"file": file, "message": message} for file, message in exc.problems],
            "active": _policy_view(current_services().policy.info),
        }
        return jsonify(body), 422
    return jsonify(_policy_view(info))


def _schema(model: type[BaseModel], drop: set[str]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name in drop:
        schema.get("properties", {}).pop(name, None)
        if name in schema.get("required", []):
            schema["required"].remove(name)
    return schema


def _operations(tag: str, key: str, schema: str) -> dict[str, Any]:
    ref = {"$ref": f"#/components/schemas/{schema}"}
    body = {"content": {"application/json": {"schema": ref}}}
    errors = {
        "400": {"$ref": "#/components/responses/Invalid"},
        "401": {"$ref": "#/components/responses/Unauthorized"},
    }
    param = [{"name": key, "in": "path", "required": True, "schema": {"type": "string"}}]
    return {
        f"/{tag}": {
            "get": {
                "tags": [tag],
                "responses": {
                    "200": {
                        "description": "all",
                        **{
                            "content": {
                                "application/json": {"schema": {"type": "array", "items": ref}}
                            }
                        },
                    }
                },
            }
        },
        f"/{tag}/{{{key}}}": {
            "parameters": param,
            "get": {
                "tags": [tag],
                "responses": {
                    "200": {"description": "found", **body},
                    "404": {"description": "not found"},
                },
            },
            "put": {
                "tags": [tag],
                "requestBody": {"required": True, **body},
                "responses": {
                    "200": {"description": "replaced", **body},
                    "201": {"description": "created", **body},
                    **errors,
                },
            },
            "delete": {
                "tags": [tag],
                "responses": {
                    "204": {"description": "deleted"},
                    "404": {"description": "not found"},
                },
            },
        },
    }


def openapi_document() -> dict[str, Any]:
    """OpenAPI 3.1 for the admin API, with the request schemas generated from the models."""
    region = _schema(Region, set())
    portal = _schema(Portal, {"client_secret_hash"})
    portal["properties"]["client_secret"] = {
        "type": "string",
        "minLength": 32,
        "writeOnly": True,
        "description": "Optional; generated and returned once when absent.",
    }
    schemas: dict[str, Any] = {"Region": region, "Portal": portal}
    for model_schema in (region, portal):
        schemas.update(model_schema.pop("$defs", {}))
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
        "info": {"title": "Tongxing admin API", "version": "v1"},
        "servers": [{"url": "/admin/v1"}],
        "security": [{"bearer": []}],
        "paths": {
            **_operations("regions", "code", "Region"),
            **_operations("portals", "client_id", "Portal"),
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {**schemas, "Error": error},
            "responses": {
                "Invalid": {
                    "description": "invalid document",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                    },
                },
                "Unauthorized": {"description": "missing or wrong bearer token"},
            },
        },
    }


@blueprint.get("/openapi.json")
def openapi() -> Response:
    return jsonify(openapi_document())
