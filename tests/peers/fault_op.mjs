// An OpenID Provider (oidc-provider, as op.mjs) with the faults a region can have, for
// tests/e2e/test_faults.py. Usage: node fault_op.mjs <port> <config-json>
// config-json is op.mjs's ({"clients": [...], "accounts": {...}}) plus:
//   "jwks": {"keys": [private JWKs]}  the signing keys (the first RS256 key signs);
//                                      without it, oidc-provider's development key
//   "clock_skew_seconds": N           this provider's clock runs N seconds off (iat, exp,
//                                      auth_time of everything it issues), as a region whose
//                                      NTP is broken
//   "garbage_jwks": true              its jwks_uri answers a body that is no JWK Set
// Listens on 127.0.0.1 only; prints "ready <issuer>" on stdout once it accepts connections.
import http from 'node:http';

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) {
  process.stderr.write('usage: node fault_op.mjs <port> [config-json]\n');
  process.exit(2);
}
const config = process.argv[3] ? JSON.parse(process.argv[3]) : {};
const skew = Number(config.clock_skew_seconds ?? 0) * 1000;
if (skew !== 0) {
  // oidc-provider reads the time through Date.now (lib/helpers/epoch_time.js): shift it before
  // the library is loaded.
  const realNow = Date.now;
  Date.now = () => realNow() + skew;
}
const { default: Provider } = await import('oidc-provider');

const issuer = `http://127.0.0.1:${port}`;
const accounts = config.accounts ?? {};
const provider = new Provider(issuer, {
  clients: config.clients ?? [],
  ...(config.jwks ? { jwks: config.jwks } : {}),
  pkce: { required: () => true },
  features: { devInteractions: { enabled: true } },
  claims: {
    openid: ['sub'],
    profile: ['name'],
    id_number: ['id_number'],
  },
  conformIdTokenClaims: false,
  async findAccount(_ctx, id) {
    if (!Object.hasOwn(accounts, id)) return undefined;
    return { accountId: id, claims: async () => ({ sub: id, ...accounts[id] }) };
  },
});

if (config.garbage_jwks) {
  provider.use(async (ctx, next) => {
    if (ctx.path === '/jwks') {
      ctx.status = 200;
      ctx.type = 'application/json';
      ctx.body = '{"keys": [{"kty": "RSA", "n": "garbage", "e": "AQAB", "kid": "x"}';
      return;
    }
    await next();
  });
}

const server = http.createServer(provider.callback());
server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`ready ${issuer}\n`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.closeAllConnections();
    server.close(() => process.exit(0));
  });
}
