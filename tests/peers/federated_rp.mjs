// A portal that joins by OpenID Federation automatic registration (§12.1), through openid-client:
// its client_id is its entity identifier, its authorization request a signed request object
// (JAR, RFC 9101, §12.1.1.1) and its token request authenticated with private_key_jwt, both
// signed with the private key of the jwks in its openid_relying_party metadata. One command per
// invocation; prints one JSON object on stdout, or the error on stderr with a non-zero exit.
//
//   node federated_rp.mjs authorize <issuer> <client-json> <redirect-uri> [scope]
//   node federated_rp.mjs callback  <issuer> <client-json> <callback-url> <pending-json>
//   node federated_rp.mjs userinfo  <issuer> <client-json> <access-token> <expected-sub>
//
// <client-json> is {"client_id": <entity id>, "jwk": <private JWK with kid and alg>}.
import * as client from 'openid-client';
import { codeCommands, configuration, run, start } from './portal_client.mjs';

await run('federated_rp.mjs', {
  async authorize(issuer, clientJson, redirectUri, scope = 'openid profile') {
    const { config, key } = await configuration(issuer, clientJson);
    const { parameters, pending } = await start(redirectUri, scope);
    const url = await client.buildAuthorizationUrlWithJAR(config, parameters, key);
    return { url: url.href, pending };
  },
  ...codeCommands,
});
