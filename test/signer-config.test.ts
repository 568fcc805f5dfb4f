/** The broker's own issuer (key rotation) and the broker config schema. */
import assert from 'node:assert/strict';
import { tmpdir } from 'node:os';
import { describe, it } from 'node:test';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { createJwtSigner, generateSigningJwks } from '../src/adapters/jwt/signer.js';
import { parseConfig } from '../src/config/load.js';
import { subjectOf } from '../src/core/claims.js';
import type { MintContext } from '../src/ports.js';
import { principalOf } from './support/principals.js';

function context(now: Date): MintContext {
  const principal = principalOf({}, now);
  return { requestId: 'r', rule: 'rule-a', subject: subjectOf(principal), principal, now };
}

describe('broker JWT signer', () => {
  it('keeps a retired key published until its tokens have expired, then drops it', async () => {
    const now = new Date();
    const first = (await generateSigningJwks()).keys;
    const second = (await generateSigningJwks()).keys;
    const signer = await createJwtSigner('https://broker.test', first);
    const minted = await signer.sign({ kind: 'token', audience: 'aud', expiresAt: new Date(now.getTime() + 3600_000) }, context(now));
    await signer.rotate(second, now);
    const published = signer.publicJwks(now);
    assert.deepEqual(published.keys.map((key) => key.kid), [second[0]?.kid, first[0]?.kid]);
    await jwtVerify(minted.token, createLocalJWKSet(published as never), { issuer: 'https://broker.test', audience: 'aud', currentDate: now });
    const later = new Date(now.getTime() + 3 * 3600_000);
    assert.deepEqual(signer.publicJwks(later).keys.map((key) => key.kid), [second[0]?.kid]);
  });

  it('signs with the new first key after rotation', async () => {
    const now = new Date();
    const signer = await createJwtSigner('https://broker.test', (await generateSigningJwks()).keys);
    const next = (await generateSigningJwks()).keys;
    await signer.rotate(next, now);
    const { token } = await signer.sign({ kind: 'token', audience: 'aud', expiresAt: new Date(now.getTime() + 60_000) }, context(now));
    const header = JSON.parse(Buffer.from(token.split('.')[0] ?? '', 'base64url').toString()) as { kid: string; alg: string };
    assert.equal(header.kid, next[0]?.kid);
    assert.equal(header.alg, 'ES256');
  });

  it('refuses keys that are not P-256 private JWKs with a kid', async () => {
    const [key] = (await generateSigningJwks()).keys;
    await assert.rejects(createJwtSigner('https://b', [{ ...key, kid: undefined }]), /kid/);
    await assert.rejects(createJwtSigner('https://b', [{ ...key, d: undefined }]), /private/);
  });
});

describe('broker config', () => {
  const base = (gitlab: string, extra = '') => `server: { publicUrl: https://broker.example.com }\ngitlab:\n${gitlab}\npolicy: { path: ./policy }\nsigning: { keysFile: keys.json }\n${extra}`;
  const good = '  - { issuer: https://gitlab.example.com, audience: https://broker.example.com }';

  it('fills defaults and resolves relative paths against the config directory', () => {
    const config = parseConfig(base(good), '/etc/oidc-broker');
    assert.equal(config.gitlab[0]?.apiUrl, 'https://gitlab.example.com/api/v4');
    assert.equal(config.gitlab[0]?.maxTokenAge, 7200);
    assert.equal(config.policy.path, '/etc/oidc-broker/policy');
    assert.equal(config.signing.keysFile, '/etc/oidc-broker/keys.json');
    assert.deepEqual(config.replay, { store: 'memory' });
    assert.ok(Object.isFrozen(config));
  });

  it('resolves the Redis CA and password files against the config directory', () => {
    const config = parseConfig(base(good, 'replay: { store: redis, url: "rediss://broker@redis.internal:6380/0", caFile: ca.pem, passwordFile: secrets/redis }\n'), '/etc/oidc-broker');
    assert.deepEqual(config.replay, { store: 'redis', url: 'rediss://broker@redis.internal:6380/0', caFile: '/etc/oidc-broker/ca.pem', passwordFile: '/etc/oidc-broker/secrets/redis', waitReplicas: 0 });
  });

  const refused: Array<{ name: string; text: string; message: RegExp }> = [
    { name: 'an http issuer on a public host', text: base('  - { issuer: http://gitlab.example.com, audience: a }'), message: /gitlab\.0\.issuer: must be an https URL/ },
    { name: 'an issuer with a query string', text: base('  - { issuer: "https://gitlab.example.com/?x=1", audience: a }'), message: /gitlab\.0\.issuer/ },
    { name: 'an unknown key', text: base(good, 'extra: 1\n'), message: /config: .*extra|Unrecognized/ },
    { name: 'a secret inline instead of a file', text: base('  - { issuer: https://gitlab.example.com, audience: a, apiToken: glpat-x }'), message: /apiToken|Unrecognized/ },
    { name: 'the same issuer twice', text: base(`${good}\n${good}`), message: /listed twice/ },
    { name: 'an apiUrl that does not end in /api/v4', text: base('  - { issuer: https://gitlab.example.com, audience: a, apiUrl: https://gitlab.example.com/api }'), message: /apiUrl: must end in \/api\/v4/ },
    { name: 'a bad duration', text: base('  - { issuer: https://gitlab.example.com, audience: a, maxTokenAge: forever }'), message: /duration/ },
    { name: 'duplicate YAML keys', text: `${base(good)}policy: { path: x }\n`, message: /config: YAML/ },
    { name: 'a Redis password inline in the URL', text: base(good, 'replay: { store: redis, url: "redis://broker:pw@redis.internal" }\n'), message: /replay\.url: .*passwordFile/ },
    { name: 'a Redis URL of another scheme', text: base(good, 'replay: { store: redis, url: "https://redis.internal" }\n'), message: /replay\.url: must be a redis/ },
    { name: 'a Redis CA file without TLS', text: base(good, 'replay: { store: redis, url: "redis://redis.internal", caFile: ca.pem }\n'), message: /replay\.caFile: caFile needs a rediss/ },
  ];
  for (const testCase of refused) {
    it(`refuses ${testCase.name}`, () => {
      assert.throws(() => parseConfig(testCase.text, tmpdir()), (err: Error) => err.message.startsWith('config:') && testCase.message.test(err.message));
    });
  }

  for (const host of ['http://127.0.0.1:8080', 'http://localhost:9000', 'http://[::1]:8080']) {
    it(`allows a loopback http issuer ${host} for local tests`, () => {
      assert.equal(parseConfig(base(`  - { issuer: "${host}", audience: a }`), tmpdir()).gitlab[0]?.issuer, host);
    });
  }
});
