/**
 * The floor: the least an exchange can do on Node, as a reference for the broker's figures. Plain node:http, the same
 * I/O as a token exchange (read the body; verify the RS256 ID token with node's one-shot verify; one kept-alive GET of
 * the job from the stand-in (undici's dispatcher, as the broker uses); two audit lines through a group-committed file append, each awaited; sign an ES256 JWT;
 * answer JSON), and nothing else: no policy, no claim checks, no replay store, no SDKs, no metrics.
 * Every exchange also signs a refresh session (an ES256 JWT carrying the caller's claims), as the broker's does; FLOOR_SESSION=0 leaves it out.
 * FLOOR_JOB=0 leaves out the job lookup. With `linkerd` CA files in the settings it answers a linkerd request instead
 * of signing a JWT: the body's CSR goes through the broker's own certificate authority (`issue()`: CSR parse, proof of
 * possession, leaf DER, signature), the least issuance can cost here (bench/linkerd-exchange.ts).
 * Speaks the broker child's IPC protocol (bench/broker-child.ts).
 */
import { createPublicKey, createPrivateKey, generateKeyPairSync, randomUUID, sign, verify, type JsonWebKey } from 'node:crypto';
import { open } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Pool } from 'undici';
import { createCertificateAuthority } from '../src/adapters/ca/index.js';
import type { GitLabPrincipal, PipelineSubject } from '../src/core/claims.js';
import type { ChildMessage, ChildRequest, ChildSettings } from './broker-child.js';

const settings = JSON.parse(process.env.BENCH_BROKER ?? '{}') as ChildSettings;
const withJob = process.env.FLOOR_JOB !== '0';
const withSession = process.env.FLOOR_SESSION !== '0';
const send = (message: ChildMessage) => process.send?.(message);

const jwks = (await (await fetch(`${settings.issuer}/oauth/discovery/keys`)).json()) as { keys: JsonWebKey[] };
const issuerKey = createPublicKey({ key: jwks.keys[0] as JsonWebKey, format: 'jwk' });
const signingKey = createPrivateKey(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'pem', type: 'pkcs8' }));
const header = Buffer.from('{"alg":"ES256","kid":"floor","typ":"JWT"}').toString('base64url');
const sessionHeader = Buffer.from('{"alg":"ES256","kid":"floor","typ":"floor-session+jwt"}').toString('base64url');

/** An ES256 JWT over `payload` with a hand-built header (node's one-shot sign). */
function signJwt(head: string, payload: Record<string, unknown>): string {
  const signingInput = `${head}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}`;
  return `${signingInput}.${sign('sha256', Buffer.from(signingInput), { key: signingKey, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
}

/** The refresh session every exchange signs: the caller's claims, the rule and the granted kinds. */
function session(claims: Record<string, unknown>, kind: string): { token: string; expiresAt: string } | undefined {
  if (!withSession) return undefined;
  const now = Math.floor(Date.now() / 1000);
  const exp = Number(claims.exp);
  const token = signJwt(sessionHeader, { sub: `project:${String(claims.project_id)}:job:${String(claims.job_id)}`, rid: randomUUID(), rule: 'floor', grants: { [kind]: {} }, principal: claims, iss: 'floor', aud: 'floor/session', iat: now, exp, jti: randomUUID() });
  return { token, expiresAt: new Date(exp * 1000).toISOString() };
}
const gitlab = new URL(settings.issuer);
const ca = settings.linkerd ? createCertificateAuthority({ trustDomain: 'cluster.local', controlPlaneNamespace: 'linkerd', ...settings.linkerd }, new Date()) : undefined;
// The broker's own GitLab client (undici's dispatcher), with none of its checks.
const gitlabPool = new Pool(gitlab.origin, { connections: 64 });
const audit = await open(settings.auditFile, 'a');
let queued: string[] = [];
let waiting: Array<() => void> = [];
let writing = false;

async function flush(): Promise<void> {
  writing = true;
  while (queued.length > 0) {
    const text = queued.join('');
    const done = waiting;
    queued = [];
    waiting = [];
    await audit.write(text);
    for (const resolve of done) resolve();
  }
  writing = false;
}

function auditLine(record: Record<string, unknown>): Promise<void> {
  return new Promise((resolve) => {
    queued.push(`${JSON.stringify(record)}\n`);
    waiting.push(resolve);
    if (!writing) void flush();
  });
}

function jobStatus(project: string, job: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    gitlabPool.dispatch(
      { method: 'GET', path: `/api/v4/projects/${project}/jobs/${job}`, headers: { 'private-token': 'floor', accept: 'application/json' } },
      {
        onConnect() {},
        onHeaders: () => true,
        onData: (chunk) => chunks.push(chunk) > 0,
        onComplete: () => resolve((JSON.parse(Buffer.concat(chunks).toString('utf8')) as { status: string }).status),
        onError: reject,
      },
    );
  });
}

const server = createServer((req, res) => {
  let body = '';
  req.setEncoding('utf8');
  req.on('data', (chunk: string) => (body += chunk));
  req.on('end', () => {
    void (async () => {
      const token = (req.headers.authorization ?? '').slice(7);
      const [head = '', payload = '', signature = ''] = token.split('.');
      const valid = verify('sha256', Buffer.from(`${head}.${payload}`), issuerKey, Buffer.from(signature, 'base64url'));
      const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Record<string, string>;
      const request = JSON.parse(body) as { grants?: { linkerd?: { csr?: string } } };
      if (!valid || (withJob && (await jobStatus(claims.project_id ?? '', claims.job_id ?? '')) !== 'running')) {
        res.writeHead(403).end();
        return;
      }
      await auditLine({ phase: 'intent', project_id: claims.project_id, job_id: claims.job_id });
      if (ca) {
        const csr = request.grants?.linkerd?.csr ?? '';
        const now = new Date();
        const principal = claims as unknown as GitLabPrincipal;
        const issued = await ca.issue(
          { kind: 'linkerd', serviceAccount: 'deploy', namespace: 'ci', csr, notAfter: new Date(now.getTime() + 600_000) },
          { requestId: randomUUID(), rule: 'floor', subject: claims as unknown as PipelineSubject, principal, now },
        );
        await auditLine({ phase: 'result', project_id: claims.project_id, job_id: claims.job_id, serial: issued.serialNumber });
        const json = JSON.stringify({ grants: { linkerd: issued }, session: session(claims, 'linkerd') });
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(json) }).end(json);
        return;
      }
      const now = Math.floor(Date.now() / 1000);
      const jwt = signJwt(header, { iss: 'floor', sub: `project:${claims.project_id}`, aud: 'floor', iat: now, exp: now + 600, jti: randomUUID(), project_id: claims.project_id, job_id: claims.job_id });
      await auditLine({ phase: 'result', project_id: claims.project_id, job_id: claims.job_id });
      const json = JSON.stringify({ grants: { token: { token: jwt } }, session: session(claims, 'token') });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(json) }).end(json);
    })();
  });
});
server.listen(0, '127.0.0.1', () => send({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` }));
process.on('message', (message: ChildRequest) => {
  if (message === 'cpu') send({ cpu: process.cpuUsage(), heapUsed: process.memoryUsage().heapUsed });
  else process.exit(0);
});
process.on('disconnect', () => process.exit(0));
