// A portal's view of an OpenID Provider, through openid-client (a certified relying-party
// library). Usage: node rp.mjs discover <issuer-url>
// Prints one JSON object on stdout; exits non-zero with the error on stderr.
import * as client from 'openid-client';

const [command, issuer] = process.argv.slice(2);

async function discover(issuerUrl) {
  const url = new URL(issuerUrl);
  // The servers under test listen on plain-HTTP loopback; production issuers are HTTPS.
  const options = url.protocol === 'http:' ? { execute: [client.allowInsecureRequests] } : {};
  const config = await client.discovery(url, 'tongxing-smoke', undefined, undefined, options);
  return config.serverMetadata();
}

try {
  if (command !== 'discover' || !issuer) {
    throw new Error('usage: node rp.mjs discover <issuer-url>');
  }
  process.stdout.write(`${JSON.stringify(await discover(issuer))}\n`);
} catch (error) {
  process.stderr.write(`${error.name}: ${error.message}\n`);
  process.exitCode = 1;
}
