/**
 * A stand-in GitLab on 127.0.0.1 for the benchmark: OIDC discovery, the JWKS and the jobs API (every job "running"),
 * with a catch-all 501 and a hit counter per kind, so the run can prove which requests reached "GitLab".
 * Plain node:http with precomputed bodies: it shares a core with the load generator and must stay cheap.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface StandInHits {
  discovery: number;
  jwks: number;
  jobs: number;
  other: number;
}

export interface StandIn {
  readonly issuer: string;
  readonly hits: StandInHits;
  close(): Promise<void>;
}

const JOB_PATH = /^\/api\/v4\/projects\/(\d+)\/jobs\/(\d+)$/;

/** `jobDelayMs`: the jobs API answers after this long (bench/google-exchange.ts models a remote GitLab). */
export async function startStandIn(publicJwk: Record<string, unknown>, options: { jobDelayMs?: number } = {}): Promise<StandIn> {
  const hits: StandInHits = { discovery: 0, jwks: 0, jobs: 0, other: 0 };
  let issuer = '';
  let discovery = '';
  const jwks = JSON.stringify({ keys: [publicJwk] });
  const server: Server = createServer((req, res) => {
    const url = req.url ?? '/';
    if (req.method === 'GET' && url === '/.well-known/openid-configuration') {
      hits.discovery++;
      res.writeHead(200, { 'content-type': 'application/json' }).end(discovery);
      return;
    }
    if (req.method === 'GET' && url === '/oauth/discovery/keys') {
      hits.jwks++;
      res.writeHead(200, { 'content-type': 'application/json' }).end(jwks);
      return;
    }
    const job = req.method === 'GET' ? JOB_PATH.exec(url.split('?')[0] ?? '') : null;
    if (job) {
      hits.jobs++;
      // The fields of GET /projects/:id/jobs/:job_id that the broker reads (GitLab REST API docs, "Get a single job").
      const body = `{"id":${job[2]},"status":"running","stage":"deploy","name":"deploy"}`;
      if (options.jobDelayMs) setTimeout(() => res.writeHead(200, { 'content-type': 'application/json' }).end(body), options.jobDelayMs);
      else res.writeHead(200, { 'content-type': 'application/json' }).end(body);
      return;
    }
    hits.other++;
    res.writeHead(501, { 'content-type': 'application/json' }).end('{"message":"not implemented by the stand-in"}');
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  issuer = `http://127.0.0.1:${port}`;
  discovery = JSON.stringify({
    issuer,
    jwks_uri: `${issuer}/oauth/discovery/keys`,
    response_types_supported: ['id_token'],
    subject_types_supported: ['public', 'pairwise'],
    id_token_signing_alg_values_supported: ['RS256'],
  });
  return {
    issuer,
    hits,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
