// OpenID Federation 1.0 trust chain resolution by @openid-federation/core (Animo's
// implementation, not the gateway's): resolve <leaf entity id> <trust anchor entity id>...
// Prints {"chains": [{"length": n, "metadata": {...}, "anchor": "..."}]}: the valid chains only;
// the library drops a chain that does not verify, has expired or breaks the metadata policy.
import { resolveTrustChains } from '@openid-federation/core';
import { compactVerify, importJWK } from 'jose';

const [command, leaf, ...anchors] = process.argv.slice(2);
if (command !== 'resolve' || !leaf || anchors.length === 0) {
  console.error('usage: federation.mjs resolve <leaf entity id> <trust anchor id>...');
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
