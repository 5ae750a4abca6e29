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
  const { client_id: clientId, client_secret: secret, jwk } = JSON.parse(clientJson);
  const url = new URL(issuer);
  // The gateway under test listens on plain-HTTP loopback; production issuers are HTTPS.
  const options = url.protocol === 'http:' ? { execute: [client.allowInsecureRequests] } : {};
  if (jwk) {
    const key = await signingKey(jwk);
    const metadata = { token_endpoint_auth_method: 'private_key_jwt' };
    const config = await client.discovery(url, clientId, metadata, client.PrivateKeyJwt(key), options);
    return { config, key };
  }
  const config = await client.discovery(url, clientId, {}, client.ClientSecretBasic(secret), options);
  return { config, key: null };
}

const commands = {
  async authorize(issuer, clientJson, redirectUri, scope = 'openid profile') {
    const { config, key } = await configuration(issuer, clientJson);
    const verifier = client.randomPKCECodeVerifier();
    const pending = { verifier, state: client.randomState(), nonce: client.randomNonce() };
    let parameters = {
      redirect_uri: redirectUri,
      scope,
      code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state: pending.state,
      nonce: pending.nonce,
    };
    if (key) {
      // §12.1.1.2: the pushed request is the signed request object (its URL's parameters).
      parameters = (await client.buildAuthorizationUrlWithJAR(config, parameters, key)).searchParams;
    }
    const url = await client.buildAuthorizationUrlWithPAR(config, parameters);
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
};

try {
  const [name, ...args] = process.argv.slice(2);
  const command = commands[name];
  if (!command || !args[0]) {
    throw new Error(`usage: node par_rp.mjs ${Object.keys(commands).join('|')} <issuer> ...`);
  }
  process.stdout.write(`${JSON.stringify(await command(...args))}\n`);
} catch (error) {
  const code = error.code ? ` [${error.code}]` : '';
  const cause = error.cause?.error ? ` (${error.cause.error}: ${error.cause.error_description ?? ''})` : '';
  process.stderr.write(`${error.name}${code}: ${error.message}${cause}\n`);
  process.exitCode = 1;
}
