// OAuth 2.1 authorization server for mcpo's OAuth tests: panva's oidc-provider 9 with the
// features an MCP client needs (RFC 8414 metadata, RFC 7591 registration, PKCE S256, RFC 8707
// resource indicators, refresh tokens, RFC 7662 introspection, RFC 7009 revocation, RFC 9207
// `iss`). Listens on 127.0.0.1 only. Installed by scripts/install-oauth-peers.sh; started by
// tests/oauth.rs.
//
// Arguments (all `--name value`):
//   --modules DIR         folder whose node_modules holds oidc-provider (required)
//   --resource URL        the only accepted RFC 8707 resource: the MCP endpoint (required)
//   --port N              0 (default) = any free port
//   --access-ttl SECONDS  access-token lifetime (default 20)
//   --static-redirect URL redirect URI of the pre-registered client (repeatable)
//   --events FILE         JSON lines: registrations, authorizations, grants, errors
//   --rs-secret S         secret of the resource server's introspection client
//   --jwt-client-key FILE private key (PEM) of `mcpo-jwt-client`, a client_credentials client
//                         authenticating with private_key_jwt; the AS keeps its public half
//
// Prints `listening on http://127.0.0.1:PORT` once it accepts connections.

import crypto from 'node:crypto';
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

function parseArgs(argv) {
  const args = { port: '0', 'access-ttl': '20', 'static-redirect': [] };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '');
    const value = argv[i + 1];
    if (value === undefined) throw new Error(`missing value for ${argv[i]}`);
    if (key === 'static-redirect') args[key].push(value);
    else args[key] = value;
  }
  for (const required of ['modules', 'resource', 'rs-secret']) {
    if (!args[required]) throw new Error(`--${required} is required`);
  }
  return args;
}

const args = parseArgs(process.argv.slice(2));
const { default: Provider, errors } = await import(
  pathToFileURL(path.join(args.modules, 'node_modules', 'oidc-provider', 'lib', 'index.js')).href
);

const RESOURCE = args.resource;
const SCOPE = 'mcp:tools';
// Needed only by the MCP server's `admin_echo` tool: asked for by a scope step-up.
const ADMIN_SCOPE = 'mcp:admin';
const ACCESS_TTL = Number(args['access-ttl']);

function record(event) {
  if (!args.events) return;
  fs.appendFileSync(args.events, `${JSON.stringify({ at: Date.now() / 1000, ...event })}\n`);
}

const server = http.createServer();
server.listen(Number(args.port), '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  const provider = new Provider(issuer, {
    clients: [
      {
        // The "pre-registered client" path: a confidential client with HTTP Basic auth.
        client_id: 'mcpo-static-client',
        client_secret: 'mcpo-static-secret',
        token_endpoint_auth_method: 'client_secret_basic',
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        redirect_uris: args['static-redirect'].length
          ? args['static-redirect']
          : ['http://localhost:3030/callback', 'http://127.0.0.1:3030/callback'],
        scope: `${SCOPE} ${ADMIN_SCOPE}`,
      },
      {
        // The machine-to-machine path: the client_credentials grant, secret in the body.
        client_id: 'mcpo-cc-client',
        client_secret: 'mcpo-cc-secret',
        token_endpoint_auth_method: 'client_secret_post',
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
        scope: SCOPE,
      },
      ...(args['jwt-client-key'] ? [{
        // The machine-to-machine path with private_key_jwt (RFC 7523) instead of a secret.
        client_id: 'mcpo-jwt-client',
        token_endpoint_auth_method: 'private_key_jwt',
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
        scope: SCOPE,
        jwks: {
          keys: [crypto.createPublicKey(fs.readFileSync(args['jwt-client-key'])).export({ format: 'jwk' })],
        },
      }] : []),
      {
        // The MCP server's own client, used only for token introspection.
        client_id: 'mcp-resource-server',
        client_secret: args['rs-secret'],
        token_endpoint_auth_method: 'client_secret_basic',
        grant_types: [],
        response_types: [],
        redirect_uris: [],
      },
    ],
    scopes: ['openid', SCOPE, ADMIN_SCOPE],
    claims: { openid: ['sub'] },
    pkce: { required: () => true },
    features: {
      devInteractions: { enabled: true },
      clientCredentials: { enabled: true },
      registration: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => RESOURCE,
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx, indicator) => {
          if (indicator !== RESOURCE) {
            record({ event: 'invalid_target', resource: indicator });
            throw new errors.InvalidTarget(`only ${RESOURCE} is served here`);
          }
          return {
            scope: `${SCOPE} ${ADMIN_SCOPE}`,
            audience: RESOURCE,
            accessTokenTTL: ACCESS_TTL,
            accessTokenFormat: 'opaque',
          };
        },
      },
    },
    // Refresh tokens whenever the client registered the grant (the stock rule also wants
    // `offline_access`, which MCP clients do not request).
    issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
    expiresWithSession: async () => false,
    ttl: {
      AccessToken: ACCESS_TTL,
      RefreshToken: 24 * 60 * 60,
      Grant: 24 * 60 * 60,
      Session: 24 * 60 * 60,
      Interaction: 10 * 60,
      AuthorizationCode: 60,
    },
    findAccount: async (ctx, id) => ({ accountId: id, claims: async () => ({ sub: id }) }),
  });

  provider.on('registration_create.success', (ctx, client) => record({
    event: 'registration',
    client_id: client.clientId,
    token_endpoint_auth_method: client.tokenEndpointAuthMethod,
    redirect_uris: client.redirectUris,
    grant_types: client.grantTypes,
    scope: client.scope ?? null,
  }));
  provider.on('authorization.accepted', (ctx) => {
    const p = ctx.oidc.params;
    record({
      event: 'authorization',
      client_id: p.client_id,
      scope: p.scope ?? null,
      resource: p.resource ?? null,
      code_challenge_method: p.code_challenge_method ?? null,
      redirect_uri: p.redirect_uri,
      has_state: Boolean(p.state),
    });
  });
  provider.on('authorization.error', (ctx, err) => record({
    event: 'authorization.error', error: err.error, description: err.error_description,
  }));
  provider.on('grant.success', (ctx) => {
    const p = ctx.oidc.params;
    record({
      event: 'grant',
      grant_type: p.grant_type,
      client_id: ctx.oidc.client?.clientId,
      client_auth: ctx.oidc.client?.clientAuthMethod,
      resource: p.resource ?? null,
    });
  });
  provider.on('grant.error', (ctx, err) => record({
    event: 'grant.error',
    grant_type: ctx.oidc.params?.grant_type,
    error: err.error,
    description: err.error_description,
  }));
  provider.on('grant.revoked', (ctx, grantId) => record({ event: 'grant.revoked', grant_id: grantId }));
  provider.on('server_error', (ctx, err) => record({ event: 'server_error', message: String(err) }));

  server.on('request', provider.callback());
  console.log(`listening on ${issuer}`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
    setTimeout(() => process.exit(0), 1000).unref();
  });
}
