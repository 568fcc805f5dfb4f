/**
 * `oidc-broker exchange` and `gate` against a stand-in broker on loopback that issues real certificates: files and
 * modes, the key never sent, denial tables, and exit codes.
 */
import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createEphemeralCa, type EphemeralCa } from '../src/adapters/ca/ephemeral.js';
import { runCliInProcess } from './support/cli-run.js';
import { IDENTITY, NAMING, contextAt, minutesAfter, planFor, scratchDir } from './linkerd-fixtures.js';

type Scenario = 'allow' | 'deny' | 'unavailable' | 'malformed' | 'unknown-kind';

const DENIAL = {
  type: 'about:blank', title: 'Required approvals are missing', status: 403, code: 'approval_required', detail: 'an approval requirement is not met',
  requestId: 'r1', reasons: [{ rule: 'payments-migrate-production', name: 'deploymentApprovals', detail: '0 of 1 approvals from payments/release' }],
};
const problem = (status: number, code: string, detail: string) => ({ type: `https://gitlab-oidc-broker.dev/errors/${code}`, title: code, status, code, detail, requestId: 'r0' });
const SUBJECT = { project_path: 'payments/api', project_id: '20', pipeline_id: '574', job_id: '302', ref_path: 'refs/heads/main', sha: 'a'.repeat(40), environment: 'production', user_login: 'alice' };
const EXPLANATION = {
  allowed: false, rule: null, code: 'approval_required',
  evaluations: [{ rule: 'payments-migrate-production', applies: false, conditions: [{ name: 'ref_path', expected: 'refs/heads/main', actual: 'refs/heads/feature', ok: false }], requirements: [], grants: [] }],
};

describe('exchange and gate commands', () => {
  let mesh: EphemeralCa;
  let server: Server;
  let broker: string;
  let scenario: Scenario = 'allow';
  const bodies: string[] = [];

  before(async () => {
    mesh = await createEphemeralCa(NAMING);
    server = createServer(async (request, response) => {
      let body = '';
      for await (const chunk of request) body += String(chunk);
      bodies.push(body);
      const reply = async (): Promise<[number, unknown]> => {
        if (request.headers.authorization !== 'Bearer test.id.token') return [401, problem(401, 'invalid_token', 'the ID token is not valid')];
        if (scenario === 'unavailable') return [503, problem(503, 'upstream_unavailable', 'GitLab API timed out')];
        if (request.url?.startsWith('/v1/explain')) return [200, scenario === 'allow' ? { allowed: true, rule: 'payments-smoke', code: null, evaluations: [] } : EXPLANATION];
        if (scenario === 'deny') return [403, DENIAL];
        const grants = (JSON.parse(body) as { grants: { linkerd: { csr: string } } }).grants;
        const now = new Date();
        const linkerd = await mesh.ca.issue(planFor(grants.linkerd.csr, minutesAfter(now, 10)), contextAt(now));
        const google = { accessToken: 'ya29.test', expiresAt: now.toISOString(), serviceAccount: 'sa@p.iam.gserviceaccount.com', scopes: [] };
        // malformed: a certificate missing from an otherwise complete answer.
        const issued = scenario === 'malformed' ? { ...linkerd, certificate: undefined } : linkerd;
        // unknown-kind: a credential of a kind this CLI has no module for, beside the ones it asked for.
        const extra = scenario === 'unknown-kind' ? { aws: { accessKeyId: 'AKIA', expiresAt: now.toISOString() } } : {};
        return [200, { requestId: 'r2', rule: 'payments-smoke', subject: SUBJECT, approvals: { deployment: [{ user: 'rel', at: undefined }] }, grants: { linkerd: issued, google, ...extra } }];
      };
      const [status, payload] = await reply();
      response.writeHead(status, { 'content-type': status === 200 ? 'application/json' : 'application/problem+json' });
      response.end(JSON.stringify(payload));
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    broker = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => server.close());

  const cli = (args: string[], token: string | undefined = 'test.id.token') => runCliInProcess(args, token);

  it('writes the certificate, a 0600 key that matches it, the anchors and a dotenv, and never sends the key', async () => {
    scenario = 'allow';
    const out = scratchDir();
    const dotenv = join(out, 'broker.env');
    const { code, stderr } = await cli(['exchange', '--broker', broker, '--grant', 'linkerd', '--grant', 'google', '--out', out, '--dotenv', dotenv]);
    assert.equal(code, 0, stderr);
    const certificate = new X509Certificate(readFileSync(join(out, 'linkerd/tls.crt')));
    assert.ok(certificate.checkPrivateKey(createPrivateKey(readFileSync(join(out, 'linkerd/tls.key')))));
    assert.equal(statSync(join(out, 'linkerd/tls.key')).mode & 0o777, 0o600);
    assert.equal(readFileSync(join(out, 'linkerd/ca.crt'), 'utf8'), mesh.trustAnchorsPem.trim() + '\n');
    assert.equal(readFileSync(join(out, 'google-access-token'), 'utf8'), 'ya29.test');
    const env = readFileSync(dotenv, 'utf8');
    assert.match(env, new RegExp(`^LINKERD_IDENTITY=${IDENTITY}$`, 'm'));
    assert.match(env, new RegExp(`^CLOUDSDK_AUTH_ACCESS_TOKEN_FILE=${join(out, 'google-access-token')}$`, 'm'));
    assert.ok(!bodies.some((body) => body.includes('PRIVATE KEY')), 'the private key left the job');
    // The exchange's authority for `spanner migrate`'s history, and nothing secret.
    assert.deepEqual(JSON.parse(readFileSync(join(out, 'exchange.json'), 'utf8')), { requestId: 'r2', rule: 'payments-smoke', subject: SUBJECT, approvals: { deployment: [{ user: 'rel' }] } });
  });

  it('refuses an exchange answer of the wrong shape with exit 3 naming the JSON path, and writes nothing', async () => {
    scenario = 'malformed';
    const out = join(scratchDir(), 'never');
    const { code, stderr } = await cli(['exchange', '--broker', broker, '--grant', 'linkerd', '--out', out]);
    assert.equal(code, 3, stderr);
    assert.match(stderr, /the broker answered 200 with an unexpected exchange response: grants\.linkerd\.certificate: /);
    assert.equal(existsSync(out), false, 'no credential directory');
  });

  it('refuses an exchange answer with a grant kind it cannot read with exit 3 naming it, and writes nothing', async () => {
    scenario = 'unknown-kind';
    const out = join(scratchDir(), 'never');
    const { code, stderr } = await cli(['exchange', '--broker', broker, '--grant', 'linkerd', '--grant', 'google', '--out', out]);
    assert.equal(code, 3, stderr);
    assert.match(stderr, /the broker answered 200 with an unexpected exchange response: grants: not a grant kind this CLI reads: aws \(it reads /);
    assert.equal(existsSync(out), false, 'no credential directory');
  });

  const failures: Array<{ name: string; scenario: Scenario; args: () => string[]; token?: string; code: number; stderr: RegExp }> = [
    { name: 'a denial exits 1 with the reasons and the condition table', scenario: 'deny', args: () => ['exchange', '--broker', broker, '--grant', 'linkerd', '--out', scratchDir()], code: 1, stderr: /denied \(HTTP 403 approval_required\)[\s\S]*RULE\s+CONDITION\s+EXPECTED\s+PIPELINE HAD[\s\S]*refs\/heads\/main\s+refs\/heads\/feature/ },
    { name: 'an unavailable broker exits 3', scenario: 'unavailable', args: () => ['exchange', '--broker', broker, '--grant', 'token', '--out', scratchDir()], code: 3, stderr: /upstream_unavailable/ },
    { name: 'a missing ID token is a usage error', scenario: 'allow', args: () => ['exchange', '--broker', broker, '--grant', 'linkerd'], token: '', code: 2, stderr: /BROKER_ID_TOKEN/ },
    { name: 'an unknown grant is a usage error', scenario: 'allow', args: () => ['exchange', '--broker', broker, '--grant', 'aws'], code: 2, stderr: /unknown grant/ },
    { name: 'a grant argument where the kind takes none is a usage error', scenario: 'allow', args: () => ['exchange', '--broker', broker, '--grant', 'google=x'], code: 2, stderr: /unknown grant "google=x": use google, linkerd, token\[=AUDIENCE\]/ },
    { name: 'a plain-http broker off loopback is a usage error', scenario: 'allow', args: () => ['exchange', '--broker', 'http://broker.example.com', '--grant', 'token'], code: 2, stderr: /https/ },
    { name: 'gate exits 1 with the table when not allowed', scenario: 'deny', args: () => ['gate', '--broker', broker, '--grant', 'google'], code: 1, stderr: /ref_path/ },
    { name: 'gate exits 0 when allowed', scenario: 'allow', args: () => ['gate', '--broker', broker, '--grant', 'linkerd'], code: 0, stderr: /^$/ },
  ];
  for (const failure of failures) {
    it(failure.name, async () => {
      scenario = failure.scenario;
      const { code, stderr } = await cli(failure.args(), failure.token);
      assert.equal(code, failure.code, stderr);
      assert.match(stderr, failure.stderr);
    });
  }
});
