/**
 * The audit sink against a disk that stops taking writes: a FIFO whose reader never reads blocks the writer once the
 * pipe buffer is full, a real blocked write(2) in the thread pool, the way a hung disk or NFS mount behaves. And the
 * time each record carries: the broker's one clock, not the system's.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, constants, openSync, readSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createAuditSink } from '../src/adapters/audit/winston-audit.js';
import { isBrokerError } from '../src/core/errors.js';
import type { AuditRecord } from '../src/ports.js';
import { startHarness } from './support/harness.js';
import { AUDIENCE } from './support/policies.js';

const TIMEOUT_MS = 300;
const record = (requestId: string, padding = ''): AuditRecord => ({ event: 'exchange', phase: 'denied', requestId, outcome: 'denied', code: 'policy_denied', detail: 'no rule', padding });

async function rejectsAsAuditUnavailable(write: Promise<void>): Promise<number> {
  const started = performance.now();
  await assert.rejects(write, (err: unknown) => isBrokerError(err) && err.code === 'audit_unavailable');
  return performance.now() - started;
}

/** Reads the FIFO every few ms (non-blocking), collecting what arrives. */
function drain(reader: number, into: string[]): NodeJS.Timeout {
  const buffer = Buffer.alloc(64 * 1024);
  return setInterval(() => {
    try {
      for (let n = readSync(reader, buffer); n > 0; n = readSync(reader, buffer)) into.push(buffer.toString('utf8', 0, n));
    } catch {
      // EAGAIN: nothing to read right now
    }
  }, 5);
}

describe('audit sink: a write that never returns', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'audit-sink-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('fails the stuck batch at the deadline, fails new records at once, and recovers when the write returns', { timeout: 30_000 }, async () => {
    const fifo = join(dir, 'audit.fifo');
    execFileSync('mkfifo', [fifo]);
    const reader = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK); // so the sink's open does not block
    const sink = await createAuditSink(fifo, { writeTimeoutMs: TIMEOUT_MS });
    let draining: NodeJS.Timeout | undefined;
    const received: string[] = [];
    try {
      // 256 KiB is more than a pipe buffer holds: the write blocks with nobody reading.
      const stuck = sink.write(record('stuck', 'x'.repeat(256 * 1024)));
      await new Promise((resolve) => setTimeout(resolve, 50)); // the stuck batch is in flight; this one queues behind it
      const [waited] = await Promise.all([rejectsAsAuditUnavailable(stuck), rejectsAsAuditUnavailable(sink.write(record('queued-behind')))]);
      assert.ok(waited >= TIMEOUT_MS - 100 && waited < TIMEOUT_MS + 2000, `the stuck write failed after ${Math.round(waited)} ms`);
      assert.ok((await rejectsAsAuditUnavailable(sink.write(record('while-stalled')))) < TIMEOUT_MS, 'a record during the stall fails at once');
      assert.equal(await sink.ready(), false, 'readiness reports the stall without another write');

      // The disk comes back: the stuck write completes and new records are written again.
      draining = drain(reader, received);
      let recovered = false;
      for (let attempt = 0; attempt < 100 && !recovered; attempt++) {
        recovered = await sink.write(record(`after-${attempt}`)).then(() => true, () => false);
        if (!recovered) await new Promise((resolve) => setTimeout(resolve, 20));
      }
      assert.ok(recovered, 'records are written again once the stuck write returned');
      await new Promise((resolve) => setTimeout(resolve, 50));
      const lines = received.join('').split('\n').filter(Boolean).map((line) => JSON.parse(line) as { requestId: string });
      assert.ok(lines.some((line) => line.requestId.startsWith('after-')), 'the recovered record reached the file');
      assert.ok(!lines.some((line) => line.requestId === 'while-stalled' || line.requestId === 'queued-behind'), 'failed records were never written');
    } finally {
      draining ??= drain(reader, received); // never leave a thread blocked in write(2)
      await sink.close();
      clearInterval(draining);
      closeSync(reader);
    }
  });

  it('writes records in order and acknowledges each after its bytes were written', async () => {
    const file = join(dir, 'audit.log');
    const sink = await createAuditSink(file, { writeTimeoutMs: TIMEOUT_MS });
    await Promise.all(Array.from({ length: 50 }, (_, index) => sink.write(record(`r${index}`))));
    await sink.close();
    const ids = (await readFile(file, 'utf8')).trim().split('\n').map((line) => (JSON.parse(line) as { requestId: string }).requestId);
    assert.deepEqual(ids, Array.from({ length: 50 }, (_, index) => `r${index}`));
  });
});

describe('audit records: stamped by the one clock', () => {
  const fixed = new Date(Math.floor(Date.now() / 1000) * 1000 - 1234);
  const clock = { now: () => new Date(fixed) };

  it('the sink stamps each record with the time of the clock it was given', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'audit-clock-'));
    try {
      const file = join(dir, 'audit.log');
      const sink = await createAuditSink(file, { clock });
      await sink.write(record('stamped'));
      await sink.close();
      const [line] = (await readFile(file, 'utf8')).trim().split('\n').map((text) => JSON.parse(text) as { timestamp: string });
      assert.equal(line?.timestamp, fixed.toISOString());
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('the broker stamps its audit records with the clock it runs on', async () => {
    const h = await startHarness({ overrides: { clock } });
    try {
      const response = await h.exchange(await h.gitlab.token(AUDIENCE));
      assert.equal(response.status, 200, response.text);
      const stamps = (await h.auditRecords()).map((entry) => entry.timestamp);
      assert.ok(stamps.length >= 2, 'an exchange writes its intent and result');
      assert.deepEqual(new Set(stamps), new Set([fixed.toISOString()]));
    } finally {
      await h.close();
    }
  });
});
