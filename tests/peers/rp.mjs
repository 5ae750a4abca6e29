// A portal's view of an OpenID Provider, through openid-client (a certified relying-party
// library). One command per invocation; prints one JSON object on stdout, or the error on
// stderr with a non-zero exit.
//
//   node rp.mjs discover  <issuer>
//   node rp.mjs authorize <issuer> <client-json> <redirect-uri> [scope] [extra-params-json]
//   node rp.mjs callback  <issuer> <client-json> <callback-url> <pending-json>
//   node rp.mjs refresh   <issuer> <client-json> <refresh-token>
//   node rp.mjs userinfo  <issuer> <client-json> <access-token> <expected-sub>
//   node rp.mjs revoke    <issuer> <client-json> <token>
//
// <client-json> is {"client_id": ..., "client_secret": ...} (no secret: a public client).
import * as client from 'openid-client';

async function configuration(issuer, clientJson) {
  const url = new URL(issuer);
  // Anything besides client_id and client_secret is client metadata (e.g. the ID token alg).
  const { client_id: clientId, client_secret: secret, ...metadata } = JSON.parse(clientJson ?? '{}');
  // The servers under test listen on plain-HTTP loopback; production issuers are HTTPS.
  const options = url.protocol === 'http:' ? { execute: [client.allowInsecureRequests] } : {};
  const auth = secret ? client.ClientSecretBasic(secret) : client.None();
  return client.discovery(url, clientId ?? 'tongxing-smoke', metadata, auth, options);
}

const commands = {
  async discover(issuer) {
    return (await configuration(issuer)).serverMetadata();
  },
  async authorize(issuer, clientJson, redirectUri, scope = 'openid profile', extra = '{}') {
    const config = await configuration(issuer, clientJson);
    const verifier = client.randomPKCECodeVerifier();
    const pending = {
      verifier,
      state: client.randomState(),
      nonce: client.randomNonce(),
    };
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: redirectUri,
      scope,
      code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state: pending.state,
      nonce: pending.nonce,
      ...JSON.parse(extra),
    });
    return { url: url.href, pending };
  },
  async callback(issuer, clientJson, callbackUrl, pendingJson) {
    const config = await configuration(issuer, clientJson);
    const pending = JSON.parse(pendingJson);
    const tokens = await client.authorizationCodeGrant(config, new URL(callbackUrl), {
      pkceCodeVerifier: pending.verifier,
      expectedState: pending.state,
      expectedNonce: pending.nonce,
      idTokenExpected: true,
    });
    return { ...tokens, claims: tokens.claims() };
  },
  async refresh(issuer, clientJson, refreshToken) {
    const config = await configuration(issuer, clientJson);
    const tokens = await client.refreshTokenGrant(config, refreshToken);
    return { ...tokens, claims: tokens.claims() };
  },
  async userinfo(issuer, clientJson, accessToken, expectedSub) {
    const config = await configuration(issuer, clientJson);
    return client.fetchUserInfo(config, accessToken, expectedSub);
  },
  async revoke(issuer, clientJson, token) {
    const config = await configuration(issuer, clientJson);
    await client.tokenRevocation(config, token);
    return { revoked: true };
  },
};

try {
  const [name, ...args] = process.argv.slice(2);
  const command = commands[name];
  if (!command || !args[0]) {
    throw new Error(`usage: node rp.mjs ${Object.keys(commands).join('|')} <issuer> ...`);
  }
  process.stdout.write(`${JSON.stringify(await command(...args))}\n`);
} catch (error) {
  const code = error.code ? ` [${error.code}]` : '';
  const cause = error.cause?.error ? ` (${error.cause.error}: ${error.cause.error_description ?? ''})` : '';
  process.stderr.write(`${error.name}${code}: ${error.message}${cause}\n`);
  process.exitCode = 1;
}
