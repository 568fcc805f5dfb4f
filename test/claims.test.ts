/** Parsing a verified ID token payload into a principal (core/claims.ts): what is refused, and with which detail. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { claimValue, MATCHABLE_CLAIMS, parsePrincipal, PATH_CLAIMS, subjectOf } from '../src/core/claims.js';
import { isBrokerError } from '../src/core/errors.js';
import { defaultIdTokenClaims } from '../src/dev/token-factory.js';

const AUDIENCE = 'https://broker.example.com';
const NOW = 1_767_225_600;
const REQUIRED = [
  'iss', 'sub', 'jti', 'namespace_id', 'namespace_path', 'project_id', 'project_path', 'user_id', 'user_login',
  'pipeline_id', 'pipeline_source', 'job_id', 'ref', 'ref_type', 'ref_path', 'ref_protected', 'sha',
];
const IDS = ['namespace_id', 'project_id', 'user_id', 'pipeline_id', 'job_id'];
const OPTIONAL = [
  'user_email', 'user_access_level', 'job_project_id', 'job_project_path', 'job_namespace_id', 'job_namespace_path',
  'environment', 'environment_protected', 'deployment_tier', 'environment_action', 'runner_environment',
  'ci_config_ref_uri', 'ci_config_sha', 'project_visibility',
];

const claims = (overrides: Record<string, unknown> = {}): Record<string, unknown> => {
  const all: Record<string, unknown> = { ...defaultIdTokenClaims({ issuer: 'https://gitlab.example.com', audience: AUDIENCE, nowSeconds: NOW }), ...overrides };
  for (const [name, value] of Object.entries(overrides)) if (value === undefined) delete all[name];
  return all;
};

/** The detail of the invalid_token refusal of a payload. */
function refusal(payload: unknown): string {
  try {
    parsePrincipal(payload, AUDIENCE);
  } catch (err) {
    assert.ok(isBrokerError(err), String(err));
    assert.equal(err.code, 'invalid_token');
    return err.detail;
  }
  return assert.fail('accepted');
}

describe('parsePrincipal', () => {
  it('keeps every string claim, the audience it was given and the dates, in a frozen principal', () => {
    const payload = claims({ groups_direct: 'payments' });
    const principal = parsePrincipal(payload, AUDIENCE);
    for (const name of [...REQUIRED, ...OPTIONAL, 'groups_direct']) assert.equal(principal[name as keyof typeof principal], payload[name], name);
    assert.equal(principal.aud, AUDIENCE);
    assert.equal(principal.iat, NOW);
    assert.equal(principal.exp, NOW + 3600);
    assert.equal(principal.nbf, NOW - 5);
    assert.ok(Object.isFrozen(principal));
    assert.equal(Object.hasOwn(principal, 'runner_id'), false);
  });

  it('refuses a payload that is not an object', () => {
    for (const payload of [null, undefined, 'iss', 7, [claims()]]) assert.equal(refusal(payload), 'payload must be an object');
  });

  it('names each missing or null required claim, in claim order', () => {
    for (const name of REQUIRED) {
      assert.equal(refusal(claims({ [name]: undefined })), `missing claim ${name}`);
      assert.equal(refusal(claims({ [name]: null })), `missing claim ${name}`);
    }
    assert.equal(refusal(claims({ sub: undefined, job_id: undefined })), 'missing claim sub');
  });

  it('reads only own claims, never inherited ones', () => {
    const inherited = Object.assign(Object.create(claims()) as object, { jti: 'x' });
    assert.equal(refusal(inherited), 'missing claim iss');
    const own = claims();
    const { exp, environment, ...rest } = own;
    const withInheritedDates = Object.assign(Object.create({ exp, environment }) as object, rest);
    assert.equal(refusal(withInheritedDates), 'claim exp must be a NumericDate');
    const optionalOnly = Object.assign(Object.create({ environment }) as object, own);
    delete (optionalOnly as Record<string, unknown>)['environment'];
    assert.equal(parsePrincipal(optionalOnly, AUDIENCE).environment, undefined);
  });

  it('refuses a required claim that is not a non-empty string of at most 2048 characters', () => {
    for (const name of REQUIRED) {
      assert.equal(refusal(claims({ [name]: 20 })), `claim ${name} must be a string`);
      assert.equal(refusal(claims({ [name]: ['x'] })), `claim ${name} must be a string`);
      assert.equal(refusal(claims({ [name]: '' })), `claim ${name} has an invalid length`);
    }
    assert.equal(refusal(claims({ user_login: 'a'.repeat(2049) })), 'claim user_login has an invalid length');
    assert.equal(parsePrincipal(claims({ user_login: 'a'.repeat(2048) }), AUDIENCE).user_login.length, 2048);
  });

  it('takes ids as decimal numbers without a leading zero, of at most 20 digits', () => {
    for (const name of IDS) {
      for (const bad of ['0', '012', 'abc', '1a', 'a1', '-1', '1.5', ' 1', '1'.repeat(21)]) {
        assert.equal(refusal(claims({ [name]: bad })), `claim ${name} must be a decimal id`, `${name}=${bad}`);
      }
      for (const good of ['1', '9', '10', '9'.repeat(20)]) assert.equal(parsePrincipal(claims({ [name]: good }), AUDIENCE)[name as 'job_id'], good);
    }
  });

  it('leaves out absent or null optional claims and refuses mistyped or over-long ones', () => {
    for (const name of OPTIONAL) {
      assert.equal(parsePrincipal(claims({ [name]: undefined }), AUDIENCE)[name as 'environment'], undefined, name);
      assert.equal(parsePrincipal(claims({ [name]: null }), AUDIENCE)[name as 'environment'], undefined, name);
      assert.equal(refusal(claims({ [name]: true })), `claim ${name} must be a string`);
      assert.equal(refusal(claims({ [name]: 'a'.repeat(2049) })), `claim ${name} is too long`);
      assert.equal(parsePrincipal(claims({ [name]: 'a'.repeat(2048) }), AUDIENCE)[name as 'environment']?.length, 2048);
      assert.equal(parsePrincipal(claims({ [name]: '' }), AUDIENCE)[name as 'environment'], '');
    }
  });

  it('ignores groups_direct when GitLab sends it as an array, but not an over-long string', () => {
    assert.equal(parsePrincipal(claims({ groups_direct: ['payments', 'ops'] }), AUDIENCE).groups_direct, undefined);
    assert.equal(refusal(claims({ groups_direct: 'g'.repeat(2049) })), 'claim groups_direct is too long');
  });

  it('requires exp and iat and allows no nbf, each a non-negative safe integer', () => {
    for (const name of ['exp', 'iat']) assert.equal(refusal(claims({ [name]: undefined })), `claim ${name} must be a NumericDate`);
    assert.equal(parsePrincipal(claims({ nbf: undefined }), AUDIENCE).nbf, undefined);
    for (const name of ['exp', 'iat', 'nbf']) {
      for (const bad of [null, '1767225600', 1.5, -1, 2 ** 53, Number.NaN]) {
        assert.equal(refusal(claims({ [name]: bad })), `claim ${name} must be a NumericDate`, `${name}=${String(bad)}`);
      }
    }
    const zero = parsePrincipal(claims({ nbf: 0, iat: 0, exp: 0 }), AUDIENCE);
    assert.deepEqual([zero.nbf, zero.iat, zero.exp], [0, 0, 0]);
    assert.equal(parsePrincipal(claims({ exp: Number.MAX_SAFE_INTEGER }), AUDIENCE).exp, Number.MAX_SAFE_INTEGER);
  });

  it('takes a sha of 40 or 64 lowercase hex digits only', () => {
    const hex40 = '714a629c0b401fdce83e847fc9589983fc6f46bc';
    const hex64 = `${hex40}0123456789abcdef01234567`;
    assert.equal(parsePrincipal(claims({ sha: hex64 }), AUDIENCE).sha, hex64);
    for (const bad of [hex40.slice(1), `${hex40}0`, `${hex40}01234567`, hex40.toUpperCase(), `g${hex40.slice(1)}`, `x${hex40}`, `${hex40}x`, `${hex64}0`]) {
      assert.equal(refusal(claims({ sha: bad })), 'claim sha must be a hex commit id', bad);
    }
  });

  it('takes ref_type branch or tag, and a ref_path under refs/', () => {
    assert.equal(parsePrincipal(claims({ ref_type: 'tag', ref_path: 'refs/tags/v1' }), AUDIENCE).ref_type, 'tag');
    for (const bad of ['merge_request', 'Branch', 'branches']) assert.equal(refusal(claims({ ref_type: bad })), 'claim ref_type must be branch or tag');
    for (const bad of ['heads/main', 'refsheads/main', '/refs/heads/main']) assert.equal(refusal(claims({ ref_path: bad })), 'claim ref_path must start with refs/');
  });
});

describe('claimValue', () => {
  const principal = parsePrincipal(claims({ environment: undefined }), AUDIENCE);

  it('reads string claims, and nothing for absent claims, dates, the audience or prototype names', () => {
    assert.equal(claimValue(principal, 'project_path'), 'payments/api');
    assert.equal(claimValue(principal, 'jti'), principal.jti);
    assert.equal(claimValue(principal, 'environment'), undefined);
    for (const name of ['exp', 'iat', 'nbf', 'aud', 'constructor', 'toString', '__proto__', 'hasOwnProperty', 'runner_id', '']) {
      assert.equal(claimValue(principal, name), undefined, name);
    }
  });

  it('reads nothing from a string claim that holds another type', () => {
    const odd = { ...principal, environment: 5, ref: ['main'] } as unknown as typeof principal;
    assert.equal(claimValue(odd, 'environment'), undefined);
    assert.equal(claimValue(odd, 'ref'), undefined);
  });
});

describe('claim lists', () => {
  it('lets policies match every string claim except jti and groups_direct', () => {
    assert.deepEqual([...MATCHABLE_CLAIMS], REQUIRED.filter((name) => name !== 'jti').concat(OPTIONAL));
  });

  it('treats exactly the path-valued claims as paths', () => {
    assert.deepEqual([...PATH_CLAIMS].sort(), [
      'ci_config_ref_uri', 'environment', 'job_namespace_path', 'job_project_path', 'namespace_path', 'project_path', 'ref',
      'ref_path', 'sub',
    ]);
  });

  it('carries the pipeline facts of a principal into its subject', () => {
    const principal = parsePrincipal(claims(), AUDIENCE);
    assert.deepEqual(subjectOf(principal), {
      project_path: 'payments/api',
      project_id: '20',
      pipeline_id: '574',
      job_id: '302',
      ref_path: 'refs/heads/main',
      sha: '714a629c0b401fdce83e847fc9589983fc6f46bc',
      environment: 'production',
      user_login: 'alice',
    });
  });
});
