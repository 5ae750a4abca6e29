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
import { fetchEntityConfiguration, resolveTrustChains } from '@openid-federation/core';
import { compactVerify, createLocalJWKSet, importJWK, jwtVerify } from 'jose';

const [command, leaf, ...anchors] = process.argv.slice(2);
if (!['resolve', 'trust-mark'].includes(command) || !leaf || anchors.length === 0) {
  console.error('usage: federation.mjs resolve <leaf entity id> <trust anchor id>...');
  console.error('       federation.mjs trust-mark <trust anchor id> <trust mark JWT>');
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
