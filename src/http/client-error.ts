/** Answers for requests Node's HTTP parser refuses before any route sees them. */
import { randomUUID } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { ERROR_TITLE } from '../core/errors.js';
import { PROBLEM_TYPE_BASE } from './problem.js';
import { SECURITY_HEADER_LINES } from './security-headers.js';

/** Headers past even our raised limit still get the contract's 413 in problem+json, not Node's bare 431. */
export function answerClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
  if (!socket.writable) return void socket.destroy();
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') return void socket.end(`HTTP/1.1 408 Request Timeout\r\n${SECURITY_HEADER_LINES}Content-Length: 0\r\nConnection: close\r\n\r\n`); // headers or body too slow
  const tooLarge = err.code === 'HPE_HEADER_OVERFLOW';
  const code = tooLarge ? 'payload_too_large' : 'invalid_request';
  const status = tooLarge ? 413 : 400;
  const body = JSON.stringify({ type: `${PROBLEM_TYPE_BASE}${code}`, title: ERROR_TITLE[code], status, code, detail: tooLarge ? 'the request headers are too large' : 'malformed HTTP request', requestId: randomUUID() });
  socket.end(`HTTP/1.1 ${status} ${tooLarge ? 'Payload Too Large' : 'Bad Request'}\r\n${SECURITY_HEADER_LINES}Content-Type: application/problem+json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
}
