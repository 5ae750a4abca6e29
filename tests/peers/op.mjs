// An independent OpenID Provider (oidc-provider, certified), standing in for an upstream that is
// not Keycloak. Usage: node op.mjs <port> [client-json]
// Listens on 127.0.0.1 only; prints "ready <issuer>" on stdout once it accepts connections.
import http from 'node:http';
import Provider from 'oidc-provider';

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) {
  process.stderr.write('usage: node op.mjs <port> [client-json]\n');
  process.exit(2);
}
const clients = process.argv[3] ? [JSON.parse(process.argv[3])] : [];
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients,
  pkce: { required: () => true },
  features: { devInteractions: { enabled: true } },
});

const server = http.createServer(provider.callback());
server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`ready ${issuer}\n`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
