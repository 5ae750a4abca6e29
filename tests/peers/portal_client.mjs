// What the portal peers share (federated_rp.mjs, explicit_rp.mjs, par_rp.mjs): an openid-client
// configuration from a <client-json> ({"client_id", "jwk"}: private_key_jwt with that private
// JWK, kid and alg included; or {"client_id", "client_secret"}: client_secret_basic), the code
// callback and userinfo commands, a PKCE + state + nonce start, and the one-command-per-invocation
// runner (one JSON object on stdout, or the error on stderr with a non-zero exit).
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

export async function configuration(issuer, clientJson) {
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

// The authorization request's parameters with a fresh PKCE verifier, state and nonce, and what
// the callback needs of them (`pending`).
export async function start(redirectUri, scope) {
  const verifier = client.randomPKCECodeVerifier();
  const pending = { verifier, state: client.randomState(), nonce: client.randomNonce() };
  const parameters = {
    redirect_uri: redirectUri,
    scope,
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state: pending.state,
    nonce: pending.nonce,
  };
  return { parameters, pending };
}

export const codeCommands = {
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

export async function run(script, commands) {
  try {
    const [name, ...args] = process.argv.slice(2);
    const command = commands[name];
    if (!command || !args[0]) {
      throw new Error(`usage: node ${script} ${Object.keys(commands).join('|')} <issuer> ...`);
    }
    process.stdout.write(`${JSON.stringify(await command(...args))}\n`);
  } catch (error) {
    const code = error.code ? ` [${error.code}]` : '';
    const cause = error.cause?.error ? ` (${error.cause.error}: ${error.cause.error_description ?? ''})` : '';
    process.stderr.write(`${error.name}${code}: ${error.message}${cause}\n`);
    process.exitCode = 1;
  }
}
