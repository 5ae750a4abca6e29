"""A region's ``metadata_from`` (issue 17) and the metadata a federated region's chain gives
(OpenID Federation 1.0 §5.1.3, §5.2.1): the parts that need no server."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from gateway.broker.errors import RegionMetadataInvalid
from gateway.broker.metadata import ProviderMetadata
from gateway.federation.upstream import RegionNotTrusted
from gateway.registry import Region

ISSUER = "https://idp.fj.example.cn/realms/fj"
BODY: dict[str, Any] = {
    "code": "fj",
    "names": {"zh": "福建", "en": "Fujian"},
    "kind": "province",
    "issuer": ISSUER,
    "client_id": "tongxing",
    "client_secret": "s3cret-s3cret",
}
DOCUMENT = {
    "issuer": ISSUER,
    "authorization_endpoint": f"{ISSUER}/auth",
    "token_endpoint": f"{ISSUER}/token",
}


def test_a_region_reads_discovery_unless_it_says_federation() -> None:
    assert Region.model_validate(BODY).metadata_from == "discovery"
    assert Region.model_validate({**BODY, "metadata_from": "federation"}).metadata_from == (
        "federation"
    )
    with pytest.raises(ValidationError):
        Region.model_validate({**BODY, "metadata_from": "dns"})


def test_jwks_uri_is_optional_only_when_the_keys_came_by_value() -> None:
    with pytest.raises(RegionMetadataInvalid, match="jwks_uri"):
        ProviderMetadata.from_document("fj", ISSUER, DOCUMENT)
    by_value = ProviderMetadata.from_document("fj", ISSUER, DOCUMENT, keys_by_value=True)
    assert by_value.jwks_uri is None
    with pytest.raises(RegionMetadataInvalid, match="issuer"):  # §5.1.3 held here too
        ProviderMetadata.from_document(
            "fj", ISSUER, {**DOCUMENT, "issuer": ISSUER + "x"}, keys_by_value=True
        )


def test_an_untrusted_region_shows_the_unavailable_page_without_a_5xx() -> None:
    error = RegionNotTrusted("fj", "federation: invalid_trust_chain")
    assert isinstance(error, RegionMetadataInvalid)
    assert error.status == 400
    assert error.message_en == RegionMetadataInvalid.message_en
