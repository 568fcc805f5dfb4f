import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { RequestDeadline } from '../src/app/deadline.js';

describe('RequestDeadline', () => {
  it('fires once when its time is up, calling each listener once in order', async () => {
    const deadline = new RequestDeadline(20);
    const calls: string[] = [];
    deadline.addEventListener('abort', () => calls.push('first'));
    deadline.addEventListener('abort', () => calls.push('second'));
    assert.equal(deadline.aborted, false);
    await sleep(80);
    assert.equal(deadline.aborted, true);
    deadline.abort();
    assert.deepEqual(calls, ['first', 'second']);
  });

  it('fires at once on abort, and a removed listener is not called', () => {
    const deadline = new RequestDeadline(60_000);
    const calls: string[] = [];
    const removed = () => calls.push('removed');
    deadline.addEventListener('abort', removed);
    deadline.addEventListener('abort', () => calls.push('kept'));
    deadline.removeEventListener('abort', removed);
    deadline.abort();
    assert.equal(deadline.aborted, true);
    assert.deepEqual(calls, ['kept']);
    deadline.addEventListener('abort', () => calls.push('late'));
    deadline.abort();
    assert.deepEqual(calls, ['kept'], 'a listener added after firing is never called');
  });

  it('never fires once ended, and keeps no timer alive', async () => {
    const deadline = new RequestDeadline(20);
    let called = false;
    deadline.addEventListener('abort', () => (called = true));
    deadline.end();
    await sleep(80);
    assert.equal(deadline.aborted, false);
    assert.equal(called, false);
  });
});
