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

const CURVES = { ES256: 'P-256', ES384: 'P-384' };

async function signingKey(jwk) {
  const { kid, alg, ...material } = jwk;
  const algorithm = CURVES[alg]
    ? { name: 'ECDSA', namedCurve: CURVES[alg] }
    : { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
  const key = await crypto.subtle.importKey('jwk', material, algorithm, false, ['sign']);
  return { key, kid };
}

async function configuration(issuer, clientJson) {
  const { client_id: clientId, jwk } = JSON.parse(clientJson);
  const key = await signingKey(jwk);
  const url = new URL(issuer);
  // The gateway under test listens on plain-HTTP loopback; production issuers are HTTPS.
  const options = url.protocol === 'http:' ? { execute: [client.allowInsecureRequests] } : {};
  const metadata = { token_endpoint_auth_method: 'private_key_jwt' };
  const config = await client.discovery(url, clientId, metadata, client.PrivateKeyJwt(key), options);
  return { config, key };
}

const commands = {
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
    const verifier = client.randomPKCECodeVerifier();
    const pending = { verifier, state: client.randomState(), nonce: client.randomNonce() };
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: redirectUri,
      scope,
      code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state: pending.state,
      nonce: pending.nonce,
    });
    return { url: url.href, pending };
  },
  async callback(issuer, clientJson, callbackUrl, pendingJson) {
    const { config } = await configuration(issuer, clientJson);
    const pending = JSON.parse(pendingJson);
    const tokens = await client.authorizationCodeGrant(config, new URL(callbackUrl), {
      pkceCodeVerifier: pending.verifier,
      expectedState: pending.state,
      expectedNonce: pending.nonce,
      idTokenExpected: true,
    });
    return { ...tokens, claims: tokens.claims() };
  },
  async userinfo(issuer, clientJson, accessToken, expectedSub) {
    const { config } = await configuration(issuer, clientJson);
    return client.fetchUserInfo(config, accessToken, expectedSub);
  },
};

try {
  const [name, ...args] = process.argv.slice(2);
  const command = commands[name];
  if (!command || !args[0]) {
    throw new Error(`usage: node explicit_rp.mjs ${Object.keys(commands).join('|')} <issuer> ...`);
  }
  process.stdout.write(`${JSON.stringify(await command(...args))}\n`);
} catch (error) {
  const code = error.code ? ` [${error.code}]` : '';
  const cause = error.cause?.error ? ` (${error.cause.error}: ${error.cause.error_description ?? ''})` : '';
  process.stderr.write(`${error.name}${code}: ${error.message}${cause}\n`);
  process.exitCode = 1;
}
