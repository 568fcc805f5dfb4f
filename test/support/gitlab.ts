/**
 * A stand-in GitLab on 127.0.0.1: OIDC discovery, the JWKS at /oauth/discovery/keys, and the jobs API
 * (`GET /api/v4/projects/:id/jobs/:job_id`) as GitLab documents them, with GitLab's error bodies and a 501
 * catch-all so an unexpected call fails loudly. Tokens are signed with real RSA keys.
 */
import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express, { type Router } from 'express';
import { SignJWT } from 'jose';
import {
  defaultIdTokenClaims,
  generateRsaSigningKey,
  signIdToken,
  withOverrides,
  type SigningKey,
} from '../../src/dev/token-factory.js';

export const API_TOKEN = 'glpat-standin-read-api-token';

export interface Faults {
  discoveryStatus?: number;
  jwksStatus?: number;
  jwksDelayMs?: number;
  /** 'down' closes the socket, a number answers with that status (429 with Retry-After: 7), 'null' a JSON null. */
  jobs?: 'down' | number | 'html' | 'null';
  jobsDelayMs?: number;
}

export interface StandInGitLab {
  readonly issuer: string;
  readonly apiUrl: string;
  readonly key: SigningKey;
  readonly hits: Map<string, number>;
  readonly faults: Faults;
  readonly jobs: Map<string, string>;
  /** Sign a GitLab-shaped ID token for `audience`, with claim overrides (null removes a claim). */
  token(audience: string, overrides?: Record<string, unknown>, options?: { key?: SigningKey; header?: Record<string, unknown> }): Promise<string>;
  claims(audience: string, overrides?: Record<string, unknown>): Record<string, unknown>;
  setJob(projectId: string, jobId: string, status: string): void;
  /** Publish another key (rotation at the issuer). */
  publish(key: SigningKey): void;
  hitCount(prefix: string): number;
  /** Refuse connections (ECONNREFUSED): the listener and every open socket are closed until `listenAgain`. */
  stopListening(): Promise<void>;
  /** Listen again on the same port. */
  listenAgain(): Promise<void>;
  close(): Promise<void>;
}

function notFound(res: express.Response): void {
  res.status(404).json({ message: '404 Not found' });
}

export async function startGitLab(options: { extraRoutes?: (router: Router) => void } = {}): Promise<StandInGitLab> {
  const key = await generateRsaSigningKey('standin-key-1');
  const published: SigningKey[] = [key];
  const hits = new Map<string, number>();
  const faults: Faults = {};
  const jobs = new Map<string, string>();
  const app = express();
  app.disable('x-powered-by');
  let issuer = '';

  app.use((req, _res, next) => {
    const path = req.path.replace(/\/\d+/g, '/:n');
    hits.set(path, (hits.get(path) ?? 0) + 1);
    next();
  });

  app.get('/.well-known/openid-configuration', (_req, res) => {
    if (faults.discoveryStatus) return void res.status(faults.discoveryStatus).json({ message: 'unavailable' });
    res.json({
      issuer,
      jwks_uri: `${issuer}/oauth/discovery/keys`,
      authorization_endpoint: `${issuer}/oauth/authorize`,
      token_endpoint: `${issuer}/oauth/token`,
      response_types_supported: ['code'],
      subject_types_supported: ['public'],
      id_token_signing_alg_values_supported: ['RS256'],
      claims_supported: ['iss', 'sub', 'aud', 'exp', 'iat', 'nbf', 'jti'],
    });
  });

  app.get('/oauth/discovery/keys', async (_req, res) => {
    if (faults.jwksDelayMs) await new Promise((resolve) => setTimeout(resolve, faults.jwksDelayMs));
    if (faults.jwksStatus) return void res.status(faults.jwksStatus).json({ message: 'unavailable' });
    res.setHeader('Cache-Control', 'max-age=86400, public');
    res.json({ keys: published.map((entry) => entry.publicJwk) });
  });

  const api = express.Router();
  api.use((req, res, next) => {
    const supplied = req.headers['private-token'] ?? req.headers.authorization?.replace(/^Bearer /, '');
    if (supplied !== API_TOKEN) return void res.status(401).json({ message: '401 Unauthorized' });
    next();
  });
  api.get('/projects/:id/jobs/:jobId', async (req, res) => {
    if (faults.jobsDelayMs) await new Promise((resolve) => setTimeout(resolve, faults.jobsDelayMs));
    if (faults.jobs === 'down') return void res.socket?.destroy();
    if (faults.jobs === 'html') return void res.status(502).type('text/html').send('<html><body>502 Bad Gateway</body></html>');
    if (faults.jobs === 'null') return void res.type('application/json').send('null');
    if (faults.jobs === 429) return void res.status(429).set('retry-after', '7').json({ message: 'Retry later' });
    if (typeof faults.jobs === 'number') return void res.status(faults.jobs).json({ message: `${faults.jobs} error` });
    const status = jobs.get(`${req.params.id}/${req.params.jobId}`);
    if (status === undefined) return notFound(res);
    res.json({
      id: Number(req.params.jobId),
      status,
      stage: 'deploy',
      name: 'deploy',
      ref: 'main',
      tag: false,
      allow_failure: false,
      created_at: '2026-11-24T07:00:00.000Z',
      started_at: '2026-11-24T07:00:05.000Z',
      pipeline: { id: 574, project_id: Number(req.params.id), ref: 'main', sha: '714a629c0b401fdce83e847fc9589983fc6f46bc', status: 'running' },
      user: { id: 30, username: 'alice', name: 'Alice', state: 'active' },
      web_url: `${issuer}/payments/api/-/jobs/${req.params.jobId}`,
    });
  });
  api.get('/personal_access_tokens/self', (_req, res) => {
    res.json({ id: 42, name: 'oidc-broker', revoked: false, created_at: '2026-01-01T00:00:00.000Z', scopes: ['read_api'], user_id: 99, active: true, expires_at: '2027-01-01' });
  });
  options.extraRoutes?.(api);
  app.use('/api/v4', api);

  app.use((_req, res) => {
    res.status(501).json({ message: '501 Not Implemented by the stand-in GitLab' });
  });

  const server: Server = app.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  issuer = `http://127.0.0.1:${port}`;
  const stop = (): Promise<void> => {
    server.closeAllConnections();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  };

  return {
    issuer,
    apiUrl: `${issuer}/api/v4`,
    key,
    hits,
    faults,
    jobs,
    claims: (audience, overrides = {}) => withOverrides(defaultIdTokenClaims({ issuer, audience }), overrides),
    async token(audience, overrides = {}, tokenOptions = {}) {
      const claims = withOverrides(defaultIdTokenClaims({ issuer, audience }), overrides);
      const signingKey = tokenOptions.key ?? key;
      if (!tokenOptions.header) return signIdToken(signingKey, claims);
      return new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid: signingKey.kid, typ: 'JWT', ...tokenOptions.header }).sign(signingKey.privateKey);
    },
    setJob(projectId, jobId, status) {
      jobs.set(`${projectId}/${jobId}`, status);
    },
    publish(extra) {
      published.push(extra);
    },
    hitCount(prefix) {
      let total = 0;
      for (const [path, count] of hits) if (path.startsWith(prefix)) total += count;
      return total;
    },
    stopListening: stop,
    async listenAgain() {
      server.listen(port, '127.0.0.1');
      await once(server, 'listening');
    },
    close: stop,
  };
}
