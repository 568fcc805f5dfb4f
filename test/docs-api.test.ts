/**
 * docs/api.md agrees with the code: every error code the broker can answer is in its table with its status, and every
 * endpoint the server serves is listed (and every listed one is served).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ERROR_STATUS, ERROR_TITLE, type ErrorCode } from '../src/core/errors.js';
import { createDevIssuer } from '../src/dev/dev-issuer.js';
import { API_ENDPOINTS } from '../src/http/api-routes.js';
import { createApp } from '../src/http/app.js';
import { createMetrics } from '../src/http/metrics.js';
import { startHarness, type Harness } from './support/harness.js';
import { codeSpan, driftReport, readDoc, section, tableRows } from './support/markdown.js';

const ENDPOINT = /^(GET|POST|PUT|PATCH|DELETE) (\/\S*)$/;

interface RouterLayer {
  readonly route?: { readonly path: string; readonly methods: Record<string, boolean> };
  readonly handle?: { readonly stack?: readonly RouterLayer[] };
}

/** `METHOD /path` for every route of an express router, descending into mounted routers. */
function expressRoutes(stack: readonly RouterLayer[]): string[] {
  return stack.flatMap((layer) => {
    if (layer.route) {
      const { path, methods } = layer.route;
      return Object.keys(methods).filter((method) => methods[method]).map((method) => `${method.toUpperCase()} ${path}`);
    }
    return layer.handle?.stack ? expressRoutes(layer.handle.stack) : [];
  });
}

describe('docs/api.md', () => {
  let api = '';
  let harness: Harness;
  before(async () => {
    api = await readDoc('docs/api.md');
    harness = await startHarness();
  });
  after(() => harness.close());

  it('lists every error code with its status, and no code the broker does not have', () => {
    const rows = tableRows(section(api, 'Errors')).filter((cells) => /^\d{3}$/.test(cells[0] ?? ''));
    const documented = new Map(rows.map((cells) => [codeSpan(cells[1]) ?? '', Number(cells[0])]));
    const codes = Object.keys(ERROR_STATUS) as ErrorCode[];
    assert.deepEqual(driftReport('error codes', codes, documented.keys(), 'docs/api.md (## Errors table)'), []);
    const wrongStatus = codes.filter((code) => documented.get(code) !== ERROR_STATUS[code]).map((code) => `${code}: code says ${ERROR_STATUS[code]}, docs say ${documented.get(code)}`);
    assert.deepEqual(wrongStatus, [], 'docs/api.md (## Errors table) gives the wrong status');
    for (const cells of rows) assert.ok((cells[2] ?? '').length > 10, `docs/api.md: ${cells[1]} has no explanation`);
  });

  it('shows the problem+json fields the broker sends', async () => {
    const response = await harness.call('/v1/exchange', { body: { grants: { token: {} } } });
    const example = section(api, 'Errors');
    for (const field of Object.keys(response.body)) assert.match(example, new RegExp(`"${field}"`), `docs/api.md (## Errors) does not show the field ${field}`);
    assert.ok(example.includes(ERROR_TITLE.approval_required), 'the example title is the real one');
  });

  it('lists every endpoint the server registers, and registers every endpoint it lists', async () => {
    const devIssuer = await createDevIssuer();
    const app = createApp(harness.broker.deps, { metrics: createMetrics({ defaultMetrics: false }), readiness: [], extraRoutes: devIssuer.router });
    const registered = [...expressRoutes((app as unknown as { router: { stack: RouterLayer[] } }).router.stack), ...API_ENDPOINTS.map((path) => `POST ${path}`)];
    assert.ok(registered.includes('GET /healthz'), `the route walk found the express routes: ${registered.join(', ')}`);
    const documented = tableRows(section(api, 'Endpoints')).flatMap((cells) => codeSpan(cells[0])?.match(ENDPOINT)?.[0] ?? []);
    assert.deepEqual(driftReport('endpoints', registered, documented, 'docs/api.md (## Endpoints tables)'), []);
  });

  it('every documented broker endpoint answers on a running broker (not "no such endpoint")', async () => {
    const documented = tableRows(section(api, 'Endpoints')).flatMap((cells) => {
      const match = codeSpan(cells[0])?.match(ENDPOINT);
      return match ? [{ method: match[1], path: match[2] as string }] : [];
    });
    const brokerEndpoints = documented.filter(({ path }) => !path.startsWith('/dev/'));
    assert.ok(brokerEndpoints.length >= 8);
    for (const { method, path } of brokerEndpoints) {
      const response = await harness.call(path, method === 'POST' ? { body: { grants: { token: {} } } } : {});
      assert.notEqual(response.body.detail, 'no such endpoint', `${method} ${path}`);
    }
    const unknown = await harness.call('/v1/no-such-thing');
    assert.equal(unknown.body.detail, 'no such endpoint', 'the probe can tell a missing endpoint');
  });
});
