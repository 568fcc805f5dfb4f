/** Shared assertions: what every denial must satisfy, and hand-forged tokens for header and payload attacks. */
import assert from 'node:assert/strict';
import { KeyObject, sign as cryptoSign } from 'node:crypto';
import type { SigningKey } from '../../src/dev/token-factory.js';
import type { CallResult, Harness } from './harness.js';

const b64 = (text: string) => Buffer.from(text, 'utf8').toString('base64url');

/** A compact JWS over exact header and payload TEXT (so duplicate keys survive), RS256-signed with `key`. */
export function forgeToken(key: SigningKey, headerText: string, payloadText: string, digest = 'RSA-SHA256'): string {
  const input = `${b64(headerText)}.${b64(payloadText)}`;
  const signature = cryptoSign(digest, Buffer.from(input), KeyObject.from(key.privateKey));
  return `${input}.${signature.toString('base64url')}`;
}

export function unsignedToken(header: object, payload: object, signature = ''): string {
  return `${b64(JSON.stringify(header))}.${b64(JSON.stringify(payload))}.${signature}`;
}

/** Status and code right, problem+json, nothing minted, an audit record for the request, the token in no log. */
export async function assertDenied(h: Harness, result: CallResult, status: number, code: string, token?: string): Promise<void> {
  assert.equal(result.status, status, `expected ${status} ${code}, got ${result.status}: ${result.text}`);
  assert.notEqual(result.status, 500);
  assert.equal(result.body.code, code, result.text);
  assert.match(result.headers.get('content-type') ?? '', /application\/problem\+json/);
  assert.equal(result.body.grants, undefined, 'a denial must mint nothing');
  assert.equal(typeof result.body.requestId, 'string');
  const records = await waitForAudit(h, result.body.requestId as string);
  assert.ok(records.some((record) => record.code === code && record.outcome === 'denied'), `no denied audit record with code ${code}`);
  if (token !== undefined && token.length > 20) await assertTokenNotLogged(h, token);
}

export async function assertTokenNotLogged(h: Harness, token: string): Promise<void> {
  const audit = await h.auditText();
  assert.ok(!audit.includes(token), 'the token appears in the audit log');
  assert.ok(!h.opsLog.some((line) => line.includes(token)), 'the token appears in the operational log');
  const signature = token.split('.')[2];
  if (signature && signature.length > 20) assert.ok(!audit.includes(signature), 'the token signature appears in the audit log');
}

/** Audit writes for 4xx raised outside a use case are fire-and-forget; give them a moment. */
export async function waitForAudit(h: Harness, requestId: string): Promise<Array<Record<string, unknown>>> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const records = (await h.auditRecords()).filter((record) => record.requestId === requestId);
    if (records.length > 0) return records;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return [];
}
