/**
 * Policy reloads in a real `oidc-broker serve` process: a policy file replaced by invalid YAML or by a schema-invalid
 * policy is refused on SIGHUP and on a file change; the last good policy keeps deciding exchanges, an error is logged,
 * `oidc_broker_policy_reload_failures_total` counts it, `oidc_broker_policy_last_reload_success` reads 0, and /readyz
 * stays 200. A valid policy is then picked up and the gauge reads 1 again.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { generateSigningJwks } from '../src/adapters/jwt/signer.js';
import { CLI_BIN, REPO_ROOT } from './support/cli-run.js';
import { startGitLab, type StandInGitLab } from './support/gitlab.js';
import { AUDIENCE } from './support/policies.js';

const policyFor = (environment: string): string => `version: 1
rules:
  - name: deploy-${environment}
    when: { project_id: "20", environment: ${environment} }
    require: { jobRunning: false }
    grant: { token: { audiences: [https://deploy.internal] } }
`;
const INVALID = [
  { name: 'invalid YAML', text: 'version: 1\nrules: [ { name: deploy, when: { project_id: "20" }\n' },
  { name: 'a schema-invalid policy (an unknown key)', text: `${policyFor('staging')}    grnat: {}\n` },
];

interface ServedBroker {
  readonly url: string;
  readonly dir: string;
  readonly child: ChildProcess;
  /** stderr lines, parsed as JSON. */
  readonly lines: Array<Record<string, unknown>>;
  stop(): Promise<void>;
}

async function serve(gitlab: StandInGitLab, watch: boolean): Promise<ServedBroker> {
  const dir = await mkdtemp(join(tmpdir(), 'oidc-broker-reload-'));
  await mkdir(join(dir, 'policy'));
  await writeFile(join(dir, 'policy', 'rules.yaml'), policyFor('production'));
  await writeFile(join(dir, 'keys.json'), JSON.stringify(await generateSigningJwks()), { mode: 0o600 });
  await writeFile(join(dir, 'broker.yaml'), [
    `server: { host: 127.0.0.1, port: 0, publicUrl: ${AUDIENCE} }`,
    `gitlab:\n  - { issuer: "${gitlab.issuer}", audience: ${AUDIENCE} }`,
    `policy: { path: policy, watch: ${watch} }`,
    'audit: { file: audit.log }',
    'signing: { keysFile: keys.json }',
    '',
  ].join('\n'));
  const child = spawn(process.execPath, [CLI_BIN, 'serve', '--config', join(dir, 'broker.yaml')], { cwd: REPO_ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  const lines: Array<Record<string, unknown>> = [];
  let partial = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    const parts = (partial + chunk.toString()).split('\n');
    partial = parts.pop() ?? '';
    for (const line of parts.filter(Boolean)) {
      try {
        lines.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        lines.push({ notJson: line });
      }
    }
  });
  const listening = await waitFor(() => lines.find((line) => line.message === 'listening'), 'the broker to listen', () => child.exitCode !== null);
  return {
    url: String(listening.url),
    dir,
    child,
    lines,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await once(child, 'exit');
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function waitFor<T>(probe: () => T | undefined | Promise<T | undefined>, what: string, gaveUp: () => boolean = () => false): Promise<T> {
  for (let attempt = 0; attempt < 300; attempt++) {
    const found = await probe();
    if (found !== undefined) return found;
    if (gaveUp()) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.fail(`timed out waiting for ${what}`);
}

/** The value of an unlabelled metric on /metrics. */
async function metric(broker: ServedBroker, name: string): Promise<number | undefined> {
  const text = await (await fetch(`${broker.url}/metrics`)).text();
  const match = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return match ? Number(match[1]) : undefined;
}

async function exchange(broker: ServedBroker, gitlab: StandInGitLab, environment: string): Promise<{ status: number; code: unknown }> {
  const token = await gitlab.token(AUDIENCE, { environment });
  const response = await fetch(`${broker.url}/v1/exchange`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ grants: { token: {} } }),
  });
  const body = (await response.json()) as Record<string, unknown>;
  return { status: response.status, code: body.code };
}

const reloadErrors = (broker: ServedBroker): number => broker.lines.filter((line) => line.level === 'error' && line.message === 'policy reload failed; keeping the last good policy').length;

describe('policy reload in a running broker', () => {
  let gitlab: StandInGitLab;
  before(async () => {
    gitlab = await startGitLab();
  });
  after(() => gitlab.close());

  describe('on SIGHUP', () => {
    let broker: ServedBroker;
    before(async () => {
      broker = await serve(gitlab, false);
    });
    after(() => broker.stop());

    it('starts with the policy loaded and the success gauge at 1', async () => {
      assert.equal(await metric(broker, 'oidc_broker_policy_last_reload_success'), 1);
      assert.equal(await metric(broker, 'oidc_broker_policy_reload_failures_total'), 0);
      assert.equal((await exchange(broker, gitlab, 'production')).status, 200);
    });

    INVALID.forEach((invalid, index) => {
      it(`refuses ${invalid.name}: the last good policy decides, an error is logged, the metrics say so, /readyz stays 200`, async () => {
        await writeFile(join(broker.dir, 'policy', 'rules.yaml'), invalid.text);
        broker.child.kill('SIGHUP');
        await waitFor(async () => ((await metric(broker, 'oidc_broker_policy_reload_failures_total')) === index + 1 ? true : undefined), 'the refused reload to be counted');
        assert.equal(await metric(broker, 'oidc_broker_policy_last_reload_success'), 0);
        assert.equal(reloadErrors(broker), index + 1, JSON.stringify(broker.lines));
        const ready = await fetch(`${broker.url}/readyz`);
        assert.equal(ready.status, 200);
        assert.equal(((await ready.json()) as { checks: Record<string, boolean> }).checks.policy, true);
        assert.deepEqual(await exchange(broker, gitlab, 'production'), { status: 200, code: undefined }, 'the last good policy still allows production');
        assert.deepEqual(await exchange(broker, gitlab, 'staging'), { status: 403, code: 'policy_denied' }, 'nothing of the refused policy applies');
      });
    });

    it('then takes a valid policy, and the gauge reads 1 again', async () => {
      await writeFile(join(broker.dir, 'policy', 'rules.yaml'), policyFor('staging'));
      broker.child.kill('SIGHUP');
      await waitFor(async () => ((await metric(broker, 'oidc_broker_policy_last_reload_success')) === 1 ? true : undefined), 'the reload to succeed');
      assert.equal(await metric(broker, 'oidc_broker_policy_reload_failures_total'), INVALID.length, 'a success does not reset the failure count');
      assert.deepEqual(await exchange(broker, gitlab, 'staging'), { status: 200, code: undefined });
      assert.deepEqual(await exchange(broker, gitlab, 'production'), { status: 403, code: 'policy_denied' });
      assert.ok(broker.lines.some((line) => line.level === 'info' && line.message === 'policy reloaded'));
    });
  });

  describe('on a file change (policy.watch)', () => {
    let broker: ServedBroker;
    before(async () => {
      broker = await serve(gitlab, true);
    });
    after(() => broker.stop());

    it('refuses an invalid file without a signal, keeps the last good policy and stays ready, then takes a valid one', async () => {
      await writeFile(join(broker.dir, 'policy', 'rules.yaml'), INVALID[1]?.text ?? '');
      await waitFor(async () => ((await metric(broker, 'oidc_broker_policy_last_reload_success')) === 0 ? true : undefined), 'the change to be refused');
      assert.ok((await metric(broker, 'oidc_broker_policy_reload_failures_total') ?? 0) >= 1);
      assert.ok(reloadErrors(broker) >= 1);
      assert.equal((await fetch(`${broker.url}/readyz`)).status, 200);
      assert.equal((await exchange(broker, gitlab, 'production')).status, 200);

      await writeFile(join(broker.dir, 'policy', 'rules.yaml'), policyFor('staging'));
      await waitFor(async () => ((await metric(broker, 'oidc_broker_policy_last_reload_success')) === 1 ? true : undefined), 'the valid change to load');
      assert.deepEqual(await exchange(broker, gitlab, 'staging'), { status: 200, code: undefined });
      assert.deepEqual(await exchange(broker, gitlab, 'production'), { status: 403, code: 'policy_denied' });
    });
  });
});
