/** The paths and field texts in messages about untrusted documents. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { jsonPath, missingFieldText } from '../src/core/json-path.js';

describe('jsonPath', () => {
  it('writes keys with dots and indexes in brackets', () => {
    assert.equal(jsonPath(['cases', 2, 'approvals', 'deployment', 'jobId']), 'cases[2].approvals.deployment.jobId');
    assert.equal(jsonPath([0, 'a', 1, 2]), '[0].a[1][2]');
    assert.equal(jsonPath(['a']), 'a');
    assert.equal(jsonPath([Symbol.for('s'), 'b']), 'Symbol(s).b');
    assert.equal(jsonPath([]), '');
  });
});

describe('missingFieldText', () => {
  it('says "is missing" for an absent field and leaves every other issue to zod', () => {
    assert.equal(missingFieldText({ code: 'invalid_type', input: undefined }), 'is missing');
    assert.equal(missingFieldText({ code: 'invalid_type', input: null }), undefined);
    assert.equal(missingFieldText({ code: 'too_small', input: undefined }), undefined);
    assert.equal(missingFieldText({}), undefined);
  });
});
