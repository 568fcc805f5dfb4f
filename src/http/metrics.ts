/** Prometheus metrics, one registry per app so tests and replicas never share counters. */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { ErrorCode } from '../core/errors.js';
import type { ApiEndpoint } from './api-routes.js';

/**
 * A request's `code` label: `ok` or the error code it was refused with; a non-API route's response that carries no
 * error code (none of ours, but express can answer by itself) is labelled with its HTTP status.
 */
export type MetricCode = ErrorCode | 'ok' | `${number}`;

export interface BrokerMetrics {
  readonly registry: Registry;
  observe(endpoint: ApiEndpoint | 'other', code: MetricCode, rule: string, seconds: number): void;
  /** The outcome of a policy load or reload: a refused one counts as a failure and keeps the last good policy. */
  policyReload(ok: boolean): void;
}

export function createMetrics(options: { defaultMetrics?: boolean } = {}): BrokerMetrics {
  const registry = new Registry();
  if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry });
  const requests = new Counter({
    name: 'oidc_broker_requests_total',
    help: 'Requests by endpoint, result code (ok or an error code) and rule',
    labelNames: ['endpoint', 'code', 'rule'] as const,
    registers: [registry],
  });
  const latency = new Histogram({
    name: 'oidc_broker_request_duration_seconds',
    help: 'Request latency by endpoint',
    labelNames: ['endpoint'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  const reloadFailures = new Counter({
    name: 'oidc_broker_policy_reload_failures_total',
    help: 'Policy reloads (SIGHUP or a file change) refused; the last good policy stayed in force',
    registers: [registry],
  });
  const lastReloadOk = new Gauge({
    name: 'oidc_broker_policy_last_reload_success',
    help: '1 when the last policy load or reload succeeded, 0 when it was refused (the last good policy is in force)',
    registers: [registry],
  });
  // Label children cached by their values: prom-client hashes a label object (sorting its keys) on every inc/observe.
  // The sets are small (endpoints × codes × rules) and only grow with the policy's rule names.
  const counters = new Map<string, Counter.Internal>();
  const timers = new Map<string, Histogram.Internal<'endpoint'>>();
  return {
    registry,
    observe(endpoint, code, rule, seconds) {
      const key = `${endpoint}\n${code}\n${rule}`;
      let counter = counters.get(key);
      if (counter === undefined) counters.set(key, (counter = requests.labels({ endpoint, code, rule })));
      counter.inc();
      let timer = timers.get(endpoint);
      if (timer === undefined) timers.set(endpoint, (timer = latency.labels({ endpoint })));
      timer.observe(seconds);
    },
    policyReload(ok) {
      if (!ok) reloadFailures.inc();
      lastReloadOk.set(ok ? 1 : 0);
    },
  };
}
