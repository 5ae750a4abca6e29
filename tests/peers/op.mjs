// An independent OpenID Provider (oidc-provider, certified), standing in for an upstream that is
// not Keycloak. Usage: node op.mjs <port> [config-json]
// config-json: {"clients": [...], "accounts": {"<login>": {claims...}}}; a bare client object
// (one with client_id) is accepted too. Signing in uses oidc-provider's development interaction
// pages: any login name in "accounts" with any password.
// Listens on 127.0.0.1 only; prints "ready <issuer>" on stdout once it accepts connections.
import http from 'node:http';
import Provider from 'oidc-provider';

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) {
  process.stderr.write('usage: node op.mjs <port> [config-json]\n');
  process.exit(2);
}
const config = process.argv[3] ? JSON.parse(process.argv[3]) : {};
const clients = config.client_id ? [config] : (config.clients ?? []);
const accounts = config.accounts ?? {};
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients,
  pkce: { required: () => true },
  features: { devInteractions: { enabled: true } },
  claims: {
    openid: ['sub'],
    profile: ['name'],
    phone: ['phone_number'],
    id_number: ['id_number'],
  },
  // Put the scope's claims into the ID token itself, as Keycloak does with its mappers.
  conformIdTokenClaims: false,
  async findAccount(_ctx, id) {
    if (!Object.hasOwn(accounts, id)) return undefined;
    return { accountId: id, claims: async () => ({ sub: id, ...accounts[id] }) };
  },
});

const server = http.createServer(provider.callback());
server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`ready ${issuer}\n`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
