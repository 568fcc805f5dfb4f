/**
 * What an operator sees on `oidc-broker serve`'s stderr: JSON lines only, "listening", an issuer whose discovery cannot
 * be loaded (its URL and the cause) at start and while unready, and a refused exchange's code at warn, never the token.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { generateSigningJwks } from '../src/adapters/jwt/signer.js';
import { spawnCli, type CliProcess } from './support/cli-run.js';
import { freePort } from './support/free-port.js';

async function waitFor(check: () => boolean, what: string): Promise<void> {
  for (let attempt = 0; attempt < 600 && !check(); attempt++) await new Promise((resolve) => setTimeout(resolve, 50));
  assert.ok(check(), `timed out waiting for ${what}`);
}

describe('oidc-broker serve: operational log', () => {
  let dir: string;
  let serve: CliProcess;
  /** The stderr lines so far, each parsed as JSON or kept as `notJson`. */
  const lines = (): Record<string, unknown>[] => serve.stderr.split('\n').filter(Boolean).map((line) => {
    try {
      return JSON.parse(line) as Record<string, unknown>;
    } catch {
      return { notJson: line };
    }
  });
  let port: number;
  let deadIssuer: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'oidc-broker-serve-log-'));
    await mkdir(join(dir, 'policy'));
    await writeFile(join(dir, 'policy', 'p.yaml'), 'version: 1\nrules:\n  - name: r\n    when: { project_id: "20" }\n    grant: { token: { audiences: [https://a.internal] } }\n');
    await writeFile(join(dir, 'keys.json'), JSON.stringify(await generateSigningJwks()), { mode: 0o600 });
    port = await freePort();
    deadIssuer = `http://127.0.0.1:${await freePort()}`; // nothing listens there
    await writeFile(join(dir, 'broker.yaml'), [
      `server: { host: 127.0.0.1, port: ${port}, publicUrl: http://127.0.0.1:${port} }`,
      `gitlab:\n  - { issuer: "${deadIssuer}", audience: http://127.0.0.1:${port} }`,
      'policy: { path: policy }',
      'signing: { keysFile: keys.json }',
      '',
    ].join('\n'));
    serve = spawnCli(['serve', '--config', join(dir, 'broker.yaml')]);
  });
  after(async () => {
    serve.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('logs "listening" as JSON, and the issuer whose discovery failed with its URL and cause', async () => {
    await waitFor(() => lines().some((line) => line.message === 'listening'), 'listening');
    await waitFor(() => lines().some((line) => line.level === 'warn' && line.issuer === deadIssuer), 'the issuer warning');
    const warning = lines().find((line) => line.level === 'warn' && line.issuer === deadIssuer) as Record<string, string>;
    assert.equal(warning.url, `${deadIssuer}/.well-known/openid-configuration`);
    assert.match(String(warning.cause), /ECONNREFUSED|fetch failed/);
    assert.deepEqual(lines().filter((line) => 'notJson' in line), []);
  });

  it('logs again while the issuer stays unready (a readiness probe retries)', async () => {
    const before = lines().filter((line) => line.issuer === deadIssuer && line.level === 'warn').length;
    const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
    assert.equal(ready.status, 503);
    // Same cause within a minute: not repeated (no log flood from probes); the probe itself reports not ready.
    assert.equal(lines().filter((line) => line.issuer === deadIssuer && line.level === 'warn').length, before);
  });

  it('logs a refused exchange with its code at warn, and the token\'s SHA-256, never the token', async () => {
    const token = 'eyJhbGciOiJSUzI1NiJ9.not-a-real-payload.signature-part';
    const response = await fetch(`http://127.0.0.1:${port}/v1/exchange`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: '{"grants":{"token":{}}}' });
    assert.equal(response.status, 401);
    await waitFor(() => lines().some((line) => line.message === 'exchange refused'), 'the refusal line');
    const refusal = lines().find((line) => line.message === 'exchange refused') as Record<string, string>;
    assert.equal(refusal.level, 'warn');
    assert.equal(refusal.code, 'invalid_token');
    assert.match(String(refusal.tokenSha256), /^[0-9a-f]{64}$/);
    assert.ok(!serve.stderr.includes(token) && !serve.stderr.includes('not-a-real-payload'));
  });
});

describe('oidc-broker doctor', () => {
  it('prints each check as it finishes, names the URL that does not answer, and gives each network check a timeout', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'oidc-broker-doctor-cli-'));
    const sockets: Socket[] = [];
    let printedWhenIssuerWasAsked = '';
    let doctorOutput = () => '';
    // An issuer that accepts the connection and never answers.
    const hanging = createServer((socket) => {
      sockets.push(socket);
      printedWhenIssuerWasAsked ||= doctorOutput();
    });
    await new Promise<void>((resolve) => hanging.listen(0, '127.0.0.1', resolve));
    const issuer = `http://127.0.0.1:${(hanging.address() as { port: number }).port}`;
    try {
      await mkdir(join(dir, 'policy'));
      await writeFile(join(dir, 'policy', 'p.yaml'), 'version: 1\nrules:\n  - name: r\n    when: { project_id: "20" }\n    grant: { token: { audiences: [https://a.internal] } }\n');
      await writeFile(join(dir, 'keys.json'), JSON.stringify(await generateSigningJwks()), { mode: 0o644 });
      await writeFile(join(dir, 'broker.yaml'), `server: { publicUrl: https://broker.test }\ngitlab:\n  - { issuer: "${issuer}", audience: https://broker.test }\npolicy: { path: policy }\nsigning: { keysFile: keys.json }\n`);
      const doctor = spawnCli(['doctor', '--config', join(dir, 'broker.yaml'), '--check-timeout', '1']);
      doctorOutput = () => doctor.stdout;
      const code = await doctor.exited;
      const stdout = doctor.stdout;
      assert.equal(code, 3, stdout);
      assert.match(printedWhenIssuerWasAsked, /^ok\s+config: /m);
      assert.match(printedWhenIssuerWasAsked, /^ok\s+policy: /m);
      assert.match(stdout, /^warn\s+permissions signing keys: .*keys\.json is mode 0644/m);
      assert.match(stdout, new RegExp(`^unreachable\\s+issuer ${issuer}: discovery or JWKS could not be loaded: .*${issuer}`, 'm'));
      assert.match(stdout, /1 unreachable/);
    } finally {
      for (const socket of sockets) socket.destroy();
      hanging.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
