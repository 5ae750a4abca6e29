// A native app (RFC 8252) signing in through an OpenID Provider with openid-client, as an app
// on a person's computer does: a public client (no secret), PKCE S256, state and nonce, and
// ID tokens whose signature is checked against the provider's JWK Set (non-repudiation checks,
// OIDC Core §3.1.3.7 step 6) besides their claims. Prints JSON lines on stdout; an error goes
// to stderr with a non-zero exit.
//
//   node native_app.mjs loopback  <issuer> <client-id> <path> [scope]
//       Listens on 127.0.0.1 on a port the system gives it (RFC 8252 §7.3), prints
//       {"url", "redirect_uri"}, waits (at most 120 s) for the browser to come back to
//       http://127.0.0.1:<port><path>, redeems the code, and prints
//       {"redirect_uri", "tokens", "claims", "userinfo"} (userinfo: by the Authorization header).
//   node native_app.mjs authorize <issuer> <client-id> <redirect-uri> [scope]
//       Prints {"url", "pending"}: for a redirect URI the app does not serve itself (a
//       private-use scheme, RFC 8252 §7.1), whose answer the test catches in the browser.
//   node native_app.mjs redeem    <issuer> <client-id> <callback-url> <pending-json>
//       Redeems the code of a callback URL; prints {"tokens", "claims", "userinfo"}.
import { createServer } from 'node:http';
import * as client from 'openid-client';

const WAIT_MS = 120_000;

async function configuration(issuer, clientId) {
  const url = new URL(issuer);
  // The gateway under test listens on plain-HTTP loopback; production issuers are HTTPS.
  const options = url.protocol === 'http:' ? { execute: [client.allowInsecureRequests] } : {};
  const config = await client.discovery(url, clientId, undefined, client.None(), options);
  client.enableNonRepudiationChecks(config);
  return config;
}

async function start(config, redirectUri, scope) {
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
}

async function redeem(config, callbackUrl, pending) {
  const tokens = await client.authorizationCodeGrant(config, new URL(callbackUrl), {
    pkceCodeVerifier: pending.verifier,
    expectedState: pending.state,
    expectedNonce: pending.nonce,
    idTokenExpected: true,
  });
  const claims = tokens.claims();
  const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
  return { tokens: { ...tokens }, claims, userinfo };
}

function print(value) {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

const commands = {
  async loopback(issuer, clientId, path, scope = 'openid profile') {
    const config = await configuration(issuer, clientId);
    let answered;
    const callback = new Promise((resolve, reject) => {
      answered = { resolve, reject };
    });
    const server = createServer((request, response) => {
      const url = new URL(request.url, `http://${request.headers.host}`);
      if (url.pathname !== path) {
        response.writeHead(404).end();
        return;
      }
      response.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' });
      response.end('已登录,请回到应用 · Signed in: return to the app');
      answered.resolve(url);
    });
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    const redirectUri = `http://127.0.0.1:${server.address().port}${path}`;
    const started = await start(config, redirectUri, scope);
    print({ url: started.url, redirect_uri: redirectUri });
    const timer = setTimeout(() => answered.reject(new Error('no callback in time')), WAIT_MS);
    try {
      const url = await callback;
      // The URL as the app received it, on the address it listens on.
      const current = `${redirectUri}${url.search}`;
      return { redirect_uri: redirectUri, ...(await redeem(config, current, started.pending)) };
    } finally {
      clearTimeout(timer);
      server.close();
    }
  },
  async authorize(issuer, clientId, redirectUri, scope = 'openid profile') {
    return start(await configuration(issuer, clientId), redirectUri, scope);
  },
  async redeem(issuer, clientId, callbackUrl, pendingJson) {
    return redeem(await configuration(issuer, clientId), callbackUrl, JSON.parse(pendingJson));
  },
};

try {
  const [name, ...args] = process.argv.slice(2);
  const command = commands[name];
  if (!command || args.length < 3) {
    throw new Error(`usage: node native_app.mjs ${Object.keys(commands).join('|')} <issuer> ...`);
  }
  print(await command(...args));
  process.exit(0);
} catch (error) {
  const code = error.code ? ` [${error.code}]` : '';
  const cause = error.cause?.error ? ` (${error.cause.error}: ${error.cause.error_description ?? ''})` : '';
  process.stderr.write(`${error.name}${code}: ${error.message}${cause}\n`);
  process.exit(1);
}
