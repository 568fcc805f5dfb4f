/**
 * A stand-in Google on 127.0.0.1, written from Google's documented REST APIs, with real signatures:
 * - STS `POST /v1/token` (RFC 8693 token exchange, what a workload-identity-federation `external_account` credentials
 *   file's `token_url` names): verifies the subject token's RS256 signature against the pool's public key and answers
 *   `{ access_token, issued_token_type, token_type, expires_in }` for the federated principal;
 * - IAM Credentials `POST /v1/projects/-/serviceAccounts/<email>:generateAccessToken` (`{ scope, lifetime, delegates }`
 *   → `{ accessToken, expireTime }`), checking the bearer and `roles/iam.serviceAccountTokenCreator` along the chain;
 * - IAM `POST /v1/projects/-/serviceAccounts/<email>:testIamPermissions` (`{ permissions }` → `{ permissions }`).
 * A service-account key file made at test time also works as ADC: Google's client libraries then send a self-signed
 * RS256 JWT (`iss` = `sub` = the account, a `scope` claim) as the bearer, which the stand-in verifies with the key's
 * public half. (Their OAuth JWT-bearer grant cannot be pointed here: google-auth-library posts it to
 * https://oauth2.googleapis.com/token whatever the key file's `token_uri` says.)
 * Errors use Google's body `{ "error": { "code", "message", "status", "details" } }`; unexpected paths get 501.
 */
import { createSign, createVerify, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const GET_ACCESS_TOKEN = 'iam.serviceAccounts.getAccessToken';
const POOL_AUDIENCE = '//iam.googleapis.com/projects/123456789/locations/global/workloadIdentityPools/broker/providers/standin';
const POOL_PRINCIPAL = 'principal://iam.googleapis.com/projects/123456789/locations/global/workloadIdentityPools/broker/subject/';
const HTTP_STATUS: Record<number, string> = {
  400: 'INVALID_ARGUMENT',
  401: 'UNAUTHENTICATED',
  403: 'PERMISSION_DENIED',
  404: 'NOT_FOUND',
  429: 'RESOURCE_EXHAUSTED',
  500: 'INTERNAL',
  502: 'UNAVAILABLE',
  503: 'UNAVAILABLE',
  504: 'DEADLINE_EXCEEDED',
};

/** A forced answer: an HTTP status in Google's error format, 'hang' (never answers) or 'html' (a proxy's 502 page). */
export type Fault = number | 'hang' | 'html';
export type Endpoint = 'sts' | 'generateAccessToken' | 'testIamPermissions';

export interface GenerateAccessTokenCall {
  readonly serviceAccount: string;
  readonly caller: string;
  readonly body: { readonly scope?: unknown; readonly lifetime?: unknown; readonly delegates?: unknown };
}

export interface StandInGoogle {
  /** Base URL of every API here, e.g. http://127.0.0.1:PORT. */
  readonly url: string;
  /** The broker's service account, reached through workload identity federation. */
  readonly brokerServiceAccount: string;
  /** An `external_account` credentials file (ADC) for the broker, written at start. */
  readonly credentialsFile: string;
  readonly calls: Record<Endpoint, number>;
  readonly generateRequests: GenerateAccessTokenCall[];
  /** Forced answers, consumed one per call, per endpoint. */
  readonly faults: Record<Endpoint, Fault[]>;
  /** Every access token this stand-in issued (STS and IAM Credentials). */
  readonly issued: Set<string>;
  /** Milliseconds every answer waits (a remote Google, for the benchmark); 0 by default. */
  latencyMs: number;
  addServiceAccount(email: string): void;
  /** Write a service-account key file for `email` (a new RSA key, registered with the stand-in); returns its path. */
  keyFile(email: string): Promise<string>;
  /** Grant `roles/iam.serviceAccountTokenCreator` on `target` to `member` (a service account email or a principal). */
  grantTokenCreator(target: string, member: string): void;
  close(): Promise<void>;
}

function googleError(res: ServerResponse, code: number, message: string, details: unknown[] = []): void {
  res.writeHead(code, { 'content-type': 'application/json; charset=UTF-8' });
  res.end(JSON.stringify({ error: { code, message, status: HTTP_STATUS[code] ?? 'UNKNOWN', details } }));
}

function json(res: ServerResponse, body: unknown): void {
  res.writeHead(200, { 'content-type': 'application/json; charset=UTF-8' });
  res.end(JSON.stringify(body));
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function b64url(value: string | Buffer): string {
  return Buffer.from(value).toString('base64url');
}

/** An RS256 JWT, as the workload's OIDC provider would sign it. */
function signJwt(key: KeyObject, payload: Record<string, unknown>): string {
  const input = `${b64url(JSON.stringify({ alg: 'RS256', typ: 'JWT', kid: 'pool-key' }))}.${b64url(JSON.stringify(payload))}`;
  return `${input}.${createSign('RSA-SHA256').update(input).sign(key).toString('base64url')}`;
}

/** The verified payload of an RS256 JWT, or undefined when the signature or shape is wrong. */
function verifyJwt(key: KeyObject, token: string): Record<string, unknown> | undefined {
  const [header, payload, signature] = token.split('.');
  if (header === undefined || payload === undefined || signature === undefined) return undefined;
  try {
    if ((JSON.parse(Buffer.from(header, 'base64url').toString()) as { alg?: unknown }).alg !== 'RS256') return undefined;
    const ok = createVerify('RSA-SHA256').update(`${header}.${payload}`).verify(key, Buffer.from(signature, 'base64url'));
    return ok ? (JSON.parse(Buffer.from(payload, 'base64url').toString()) as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

const SA_PATH = /^\/v1\/projects\/-\/serviceAccounts\/([^/:]+):(generateAccessToken|testIamPermissions)$/;
const DELEGATE = /^projects\/-\/serviceAccounts\/([^/]+)$/;
const LIFETIME = /^(\d+)(?:\.\d+)?s$/;

export async function startGoogle(): Promise<StandInGoogle> {
  const poolKey = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const brokerServiceAccount = 'oidc-broker@broker-project.iam.gserviceaccount.com';
  const serviceAccounts = new Set<string>([brokerServiceAccount]);
  const tokenCreators = new Map<string, Set<string>>();
  const tokens = new Map<string, string>(); // access token → member
  const issued = new Set<string>();
  const calls: Record<Endpoint, number> = { sts: 0, generateAccessToken: 0, testIamPermissions: 0 };
  const faults: Record<Endpoint, Fault[]> = { sts: [], generateAccessToken: [], testIamPermissions: [] };
  const generateRequests: GenerateAccessTokenCall[] = [];
  const hanging = new Set<ServerResponse>();
  const accountKeys = new Map<string, { id: string; publicKey: KeyObject }>(); // email → key

  const mayImpersonate = (target: string, member: string): boolean => tokenCreators.get(target)?.has(member) ?? false;
  const newToken = (member: string): string => {
    const token = `ya29.standin-${randomBytes(24).toString('base64url')}`;
    tokens.set(token, member);
    issued.add(token);
    return token;
  };

  /** Answers a forced fault, if one is queued for `endpoint`; true when it did. */
  function fault(endpoint: Endpoint, res: ServerResponse): boolean {
    const next = faults[endpoint].shift();
    if (next === undefined) return false;
    if (next === 'hang') hanging.add(res);
    else if (next === 'html') {
      res.writeHead(502, { 'content-type': 'text/html' });
      res.end('<html><body>502 Bad Gateway</body></html>');
    } else googleError(res, next, `stand-in fault ${next}`);
    return true;
  }

  function sts(form: URLSearchParams, res: ServerResponse): void {
    if (form.get('grant_type') !== 'urn:ietf:params:oauth:grant-type:token-exchange') return googleError(res, 400, 'unsupported grant_type');
    if (form.get('audience') !== POOL_AUDIENCE) return googleError(res, 400, 'unknown audience');
    const claims = verifyJwt(poolKey.publicKey, form.get('subject_token') ?? '');
    if (claims === undefined || typeof claims.sub !== 'string' || claims.aud !== POOL_AUDIENCE) return googleError(res, 400, 'invalid subject token');
    json(res, {
      access_token: newToken(`${POOL_PRINCIPAL}${claims.sub}`),
      issued_token_type: 'urn:ietf:params:oauth:token-type:access_token',
      token_type: 'Bearer',
      expires_in: 3600,
    });
  }

  function generateAccessToken(target: string, caller: string, body: GenerateAccessTokenCall['body'], res: ServerResponse): void {
    generateRequests.push({ serviceAccount: target, caller, body });
    const scope = body.scope;
    if (!Array.isArray(scope) || scope.length === 0) return googleError(res, 400, 'At least one scope must be specified.');
    const lifetime = body.lifetime === undefined ? '3600s' : body.lifetime;
    const seconds = typeof lifetime === 'string' ? LIFETIME.exec(lifetime)?.[1] : undefined;
    if (seconds === undefined || Number(seconds) > 3600) return googleError(res, 400, 'The lifetime must be at most 3600s.');
    const chain: string[] = [];
    for (const delegate of Array.isArray(body.delegates) ? (body.delegates as unknown[]) : []) {
      const email = typeof delegate === 'string' ? DELEGATE.exec(delegate)?.[1] : undefined;
      if (email === undefined) return googleError(res, 400, 'Invalid form of delegate account name.');
      chain.push(email);
    }
    let member = caller;
    for (const hop of [...chain, target]) {
      if (!serviceAccounts.has(hop)) return googleError(res, 404, `Not found; Gaia id not found for email ${hop}`);
      if (!mayImpersonate(hop, member)) {
        return googleError(res, 403, "Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist).", [
          { '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason: 'IAM_PERMISSION_DENIED', domain: 'iam.googleapis.com', metadata: { permission: GET_ACCESS_TOKEN } },
        ]);
      }
      member = `serviceAccount:${hop}`;
    }
    json(res, { accessToken: newToken(`serviceAccount:${target}`), expireTime: new Date(Date.now() + Number(seconds) * 1000).toISOString() });
  }

  function testIamPermissions(target: string, caller: string, body: { permissions?: unknown }, res: ServerResponse): void {
    if (!serviceAccounts.has(target)) return googleError(res, 404, `Service account projects/-/serviceAccounts/${target} does not exist.`);
    const asked = Array.isArray(body.permissions) ? body.permissions.filter((p): p is string => typeof p === 'string') : [];
    const granted = asked.filter((permission) => permission === GET_ACCESS_TOKEN && mayImpersonate(target, caller));
    // Google omits the field when nothing is granted (proto3 JSON drops empty repeated fields).
    json(res, granted.length > 0 ? { permissions: granted } : {});
  }

  /** Who a bearer is: an access token issued here, or a self-signed JWT of a service account with a registered key. */
  function callerOf(bearer: string): string | undefined {
    const issuedTo = tokens.get(bearer);
    if (issuedTo !== undefined || bearer.split('.').length !== 3) return issuedTo;
    let header: { kid?: unknown };
    try {
      header = JSON.parse(Buffer.from(bearer.split('.')[0] as string, 'base64url').toString()) as { kid?: unknown };
    } catch {
      return undefined;
    }
    for (const [email, key] of accountKeys) {
      if (header.kid !== key.id) continue;
      const claims = verifyJwt(key.publicKey, bearer);
      const fresh = typeof claims?.exp === 'number' && claims.exp > Date.now() / 1000;
      const scoped = typeof claims?.scope === 'string' || typeof claims?.aud === 'string';
      if (claims?.iss === email && claims.sub === email && fresh && scoped) return `serviceAccount:${email}`;
    }
    return undefined;
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://stand-in').pathname;
    const text = await readBody(req);
    if (req.method === 'POST' && path === '/v1/token') {
      calls.sts += 1;
      if (!fault('sts', res)) sts(new URLSearchParams(text), res);
      return;
    }
    const match = req.method === 'POST' ? SA_PATH.exec(path) : null;
    if (match === null) return googleError(res, 501, `stand-in Google does not implement ${req.method} ${path}`);
    const target = decodeURIComponent(match[1] as string);
    const endpoint = match[2] as 'generateAccessToken' | 'testIamPermissions';
    calls[endpoint] += 1;
    if (fault(endpoint, res)) return;
    const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    const caller = bearer === undefined ? undefined : callerOf(bearer);
    if (caller === undefined) return googleError(res, 401, 'Request had invalid authentication credentials. Expected OAuth 2 access token.');
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(text) as Record<string, unknown>;
    } catch {
      return googleError(res, 400, 'Invalid JSON payload received.');
    }
    if (endpoint === 'generateAccessToken') generateAccessToken(target, caller, body, res);
    else testIamPermissions(target, caller, body, res);
  }

  const server = createServer((req, res) => {
    const answer = () => void handle(req, res).catch((err: unknown) => googleError(res, 500, String(err)));
    if (standIn.latencyMs > 0) setTimeout(answer, standIn.latencyMs);
    else answer();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  // What the broker's deployment would hold: a workload's OIDC token (here signed with the pool's key) and an
  // external_account file that exchanges it at STS and impersonates the broker's service account.
  const dir = await mkdtemp(join(tmpdir(), 'standin-google-'));
  const subjectTokenFile = join(dir, 'subject-token');
  const now = Math.floor(Date.now() / 1000);
  await writeFile(subjectTokenFile, signJwt(poolKey.privateKey, { iss: 'https://workload.example', sub: 'system:serviceaccount:broker:oidc-broker', aud: POOL_AUDIENCE, iat: now, exp: now + 3600 }));
  const credentialsFile = join(dir, 'application_default_credentials.json');
  await writeFile(
    credentialsFile,
    JSON.stringify({
      type: 'external_account',
      audience: POOL_AUDIENCE,
      subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
      token_url: `${url}/v1/token`,
      service_account_impersonation_url: `${url}/v1/projects/-/serviceAccounts/${brokerServiceAccount}:generateAccessToken`,
      credential_source: { file: subjectTokenFile, format: { type: 'text' } },
    }),
  );
  tokenCreators.set(brokerServiceAccount, new Set([`${POOL_PRINCIPAL}system:serviceaccount:broker:oidc-broker`]));

  const standIn: StandInGoogle = {
    url,
    brokerServiceAccount,
    latencyMs: 0,
    credentialsFile,
    calls,
    generateRequests,
    faults,
    issued,
    addServiceAccount: (email) => void serviceAccounts.add(email),
    async keyFile(email) {
      const key = generateKeyPairSync('rsa', { modulusLength: 2048 });
      const id = randomBytes(20).toString('hex');
      accountKeys.set(email, { id, publicKey: key.publicKey });
      serviceAccounts.add(email);
      const file = join(dir, `${email}.json`);
      await writeFile(
        file,
        JSON.stringify({
          type: 'service_account',
          project_id: email.split('@')[1]?.split('.')[0],
          private_key_id: id,
          private_key: key.privateKey.export({ type: 'pkcs8', format: 'pem' }),
          client_email: email,
          client_id: '100000000000000000001',
          token_uri: `${url}/token`,
          universe_domain: 'googleapis.com',
        }),
        { mode: 0o600 },
      );
      return file;
    },
    grantTokenCreator(target, member) {
      const members = tokenCreators.get(target) ?? new Set<string>();
      members.add(member.includes(':') ? member : `serviceAccount:${member}`);
      tokenCreators.set(target, members);
    },
    async close() {
      for (const res of hanging) res.destroy();
      server.closeAllConnections();
      server.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
  return standIn;
}
