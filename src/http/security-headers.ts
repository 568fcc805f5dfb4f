/**
 * Headers on every response, errors and the raw refusals included: the broker serves JSON, PEM and metrics to programs,
 * never pages, so a browser is told to render nothing, frame nothing, send no referrer and store nothing. Routes that
 * may be cached (discovery, keys) set their own Cache-Control over the `no-store` default. No Strict-Transport-Security:
 * the broker speaks plain HTTP behind the TLS-terminating proxy, which is where HSTS belongs (docs/security.md).
 */
import type { ServerResponse } from 'node:http';

export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  'Content-Security-Policy': "default-src 'none'; frame-ancestors 'none'",
  'Referrer-Policy': 'no-referrer',
  'Cache-Control': 'no-store',
};

const ENTRIES = Object.entries(SECURITY_HEADERS);

/** The same headers as raw HTTP/1.1 header lines, for answers written straight to the socket. */
export const SECURITY_HEADER_LINES = ENTRIES.map(([name, value]) => `${name}: ${value}\r\n`).join('');

export function setSecurityHeaders(res: ServerResponse): void {
  for (const [name, value] of ENTRIES) res.setHeader(name, value);
}
