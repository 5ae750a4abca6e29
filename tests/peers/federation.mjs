// OpenID Federation 1.0 trust chain resolution by @openid-federation/core (Animo's
// implementation, not the gateway's): resolve <leaf entity id> <trust anchor entity id>...
// Prints {"chains": [{"length": n, "metadata": {...}, "anchor": "..."}]}: the valid chains only;
// the library drops a chain that does not verify, has expired or breaks the metadata policy.
//
// trust-mark <trust anchor entity id> <trust mark JWT>: validates a trust mark as §7.3 says,
// with the anchor's entity configuration fetched and verified by @openid-federation/core and
// the mark's signature, typ (trust-mark+jwt), iss and exp checked by jose against the anchor's
// federation JWKS; the issuer must be listed for the type in trust_mark_issuers. Prints
// {"valid": true, "claims": {...}} or {"valid": false, "error": "..."}. (0.2.1's own trust mark
// schema is a pre-Final draft's, with `id` for the Final's `trust_mark_type`: not used.)
//
// historical-keys <trust anchor entity id> <statement JWT>: OpenID Federation 1.0 §8.7. The
// anchor's entity configuration is fetched and verified by @openid-federation/core; the response
// of its federation_historical_keys_endpoint is verified by jose with the configuration's jwks
// (typ jwk-set+jwt, iss the anchor); then the statement is verified by jose against the
// configuration's jwks ("current") and against the historical keys ("historical": the key's
// kid listed, the statement issued before the key's exp, the key not revoked before then).
// Prints {"current": bool, "historical": bool, "keys": [...]}.
import { fetchEntityConfiguration, resolveTrustChains } from '@openid-federation/core';
import { compactVerify, createLocalJWKSet, importJWK, jwtVerify } from 'jose';

const [command, leaf, ...anchors] = process.argv.slice(2);
if (!['resolve', 'trust-mark', 'historical-keys'].includes(command) || !leaf || anchors.length === 0) {
  console.error('usage: federation.mjs resolve <leaf entity id> <trust anchor id>...');
  console.error('       federation.mjs trust-mark <trust anchor id> <trust mark JWT>');
  console.error('       federation.mjs historical-keys <trust anchor id> <statement JWT>');
  process.exit(2);
}

// Verify a statement's signature with the key the library chose from the superior's jwks.
const verifyJwtCallback = async ({ jwt, jwk, header }) => {
  try {
    const key = await importJWK(jwk, header.alg);
    await compactVerify(jwt, key);
    return true;
  } catch {
    return false;
  }
};

const verifies = async (token, keys) => {
  try {
    const { payload } = await jwtVerify(token, createLocalJWKSet({ keys }));
    return payload;
  } catch {
    return null;
  }
};

if (command === 'historical-keys') {
  const [anchorId, statement] = [leaf, anchors[0]];
  const configuration = await fetchEntityConfiguration({ entityId: anchorId, verifyJwtCallback });
  const endpoint = configuration.metadata?.federation_entity?.federation_historical_keys_endpoint;
  const response = await fetch(endpoint);
  if (response.headers.get('content-type') !== 'application/jwk-set+jwt') {
    throw new Error(`content type ${response.headers.get('content-type')}`);
  }
  const { payload } = await jwtVerify(await response.text(), createLocalJWKSet(configuration.jwks), {
    typ: 'jwk-set+jwt',
    issuer: anchorId,
  });
  if (typeof payload.iat !== 'number' || !Array.isArray(payload.keys)) {
    throw new Error('iat and keys are required');
  }
  const current = (await verifies(statement, configuration.jwks.keys)) !== null;
  // A historical key verifies what it signed while it was valid: before its exp, and before
  // its revocation when it was revoked (§8.7.2).
  const usable = payload.keys.map(({ iat, exp, revoked, ...key }) => ({ key, exp, revoked }));
  const { kid } = JSON.parse(Buffer.from(statement.split('.')[0], 'base64url'));
  const entry = usable.find(({ key }) => key.kid === kid);
  let historical = false;
  if (entry) {
    const claims = await verifies(statement, [entry.key]);
    const until = Math.min(entry.exp, entry.revoked?.revoked_at ?? Infinity);
    historical = claims !== null && claims.iat <= until;
  }
  console.log(JSON.stringify({ current, historical, keys: payload.keys }));
  process.exit(0);
}

if (command === 'trust-mark') {
  const [anchorId, mark] = [leaf, anchors[0]];
  try {
    const configuration = await fetchEntityConfiguration({ entityId: anchorId, verifyJwtCallback });
    const { payload } = await jwtVerify(mark, createLocalJWKSet(configuration.jwks), {
      typ: 'trust-mark+jwt',
      issuer: anchorId,
    });
    const issuers = configuration.trust_mark_issuers?.[payload.trust_mark_type];
    if (!Array.isArray(issuers) || !issuers.includes(payload.iss)) {
      throw new Error('the issuer is not a trust_mark_issuer of this type');
    }
    if (typeof payload.sub !== 'string' || typeof payload.iat !== 'number') {
      throw new Error('sub and iat are required');
    }
    console.log(JSON.stringify({ valid: true, claims: payload }));
  } catch (error) {
    console.log(JSON.stringify({ valid: false, error: String(error?.message ?? error) }));
  }
  process.exit(0);
}

try {
  const chains = await resolveTrustChains({
    entityId: leaf,
    trustAnchorEntityIds: anchors,
    verifyJwtCallback,
  });
  const valid = chains.filter((chain) => chain.valid);
  console.log(JSON.stringify({
    chains: valid.map((chain) => ({
      length: chain.chain.length,
      metadata: chain.resolvedLeafMetadata,
      anchor: chain.trustAnchorEntityConfiguration.sub,
    })),
  }));
} catch (error) {
  const detail = error?.cause ?? error?.details ?? error?.issues;
  console.log(JSON.stringify({ chains: [], error: String(error?.message ?? error), detail }));
}
