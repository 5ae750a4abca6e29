// A portal registered by OpenID Federation explicit registration (§12.2): it checks the OP's
// signed registration response with jose (§12.2.5: signed by a federation key of the OP, typ
// explicit-registration-response+jwt, aud the portal), then signs in through openid-client with
// the client_id the OP assigned and private_key_jwt (the key of its openid_relying_party jwks).
// One command per invocation; prints one JSON object on stdout, or the error on stderr with a
// non-zero exit.
//
//   node explicit_rp.mjs verify    <issuer> <jwks-json> <response-jwt> <entity-id>
//   node explicit_rp.mjs authorize <issuer> <client-json> <redirect-uri> [scope]
//   node explicit_rp.mjs callback  <issuer> <client-json> <callback-url> <pending-json>
//   node explicit_rp.mjs userinfo  <issuer> <client-json> <access-token> <expected-sub>
//
// <client-json> is {"client_id": <assigned client id>, "jwk": <private JWK with kid and alg>}.
import * as jose from 'jose';
import * as client from 'openid-client';
import { codeCommands, configuration, run, start } from './portal_client.mjs';

await run('explicit_rp.mjs', {
  async verify(issuer, jwksJson, token, entityId) {
    const keys = jose.createLocalJWKSet(JSON.parse(jwksJson));
    const { payload, protectedHeader } = await jose.jwtVerify(token, keys, {
      issuer,
      audience: entityId,
      subject: entityId,
      typ: 'explicit-registration-response+jwt',
      algorithms: ['RS256', 'ES256', 'PS256'],
    });
    return { payload, header: protectedHeader };
  },
  async authorize(issuer, clientJson, redirectUri, scope = 'openid profile') {
    const { config } = await configuration(issuer, clientJson);
    const { parameters, pending } = await start(redirectUri, scope);
    const url = client.buildAuthorizationUrl(config, parameters);
    return { url: url.href, pending };
  },
  ...codeCommands,
});
