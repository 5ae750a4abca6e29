// A portal that pushes its authorization request (PAR, RFC 9126) through openid-client 6
// (buildAuthorizationUrlWithPAR): a confidential portal authenticated with client_secret_basic,
// or a portal of OpenID Federation automatic registration (§12.1.1.2), whose client_id is its
// entity identifier, authenticated with private_key_jwt and pushing a signed request object
// (JAR, RFC 9101, §12.1.1.1). One command per invocation; prints one JSON object on stdout, or
// the error on stderr with a non-zero exit.
//
//   node par_rp.mjs authorize <issuer> <client-json> <redirect-uri> [scope]
//   node par_rp.mjs callback  <issuer> <client-json> <callback-url> <pending-json>
//
// <client-json> is {"client_id", "client_secret"} (a confidential portal) or
// {"client_id": <entity id>, "jwk": <private JWK with kid and alg>} (automatic registration).
import * as client from 'openid-client';
import { codeCommands, configuration, run, start } from './portal_client.mjs';

await run('par_rp.mjs', {
  async authorize(issuer, clientJson, redirectUri, scope = 'openid profile') {
    const { config, key } = await configuration(issuer, clientJson);
    let { parameters, pending } = await start(redirectUri, scope);
    if (key) {
      // §12.1.1.2: the pushed request is the signed request object (its URL's parameters).
      parameters = (await client.buildAuthorizationUrlWithJAR(config, parameters, key)).searchParams;
    }
    const url = await client.buildAuthorizationUrlWithPAR(config, parameters);
    return { url: url.href, pending };
  },
  callback: codeCommands.callback,
});
