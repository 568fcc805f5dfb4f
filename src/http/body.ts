/**
 * Reads a JSON request body as UTF-8 text with the 64 KiB limit, checked against Content-Length before reading and
 * against the bytes as they arrive. A Content-Type, when sent, must be application/json: a form or a text body is
 * refused before a byte of it is read, not parsed as if it were JSON. Used instead of body-parser on the exchange
 * path, where body-parser's charset machinery and stream plumbing were a measurable share of each request
 * (docs/performance.md).
 */
import type { IncomingMessage } from 'node:http';
import { BrokerError } from '../core/errors.js';

const UTF8_CHARSET = /charset\s*=\s*"?(?:utf-?8|us-ascii)"?\s*(?:;|$)/i;
const JSON_MEDIA_TYPE = /^\s*application\/json\s*(?:;|$)/i;

export function readTextBody(req: IncomingMessage, limit: number): Promise<string> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > limit) {
    return Promise.reject(new BrokerError('payload_too_large', `the body is larger than ${limit / 1024} KiB`));
  }
  const type = req.headers['content-type'];
  if (type !== undefined && !JSON_MEDIA_TYPE.test(type)) {
    return Promise.reject(new BrokerError('invalid_request', 'the body must be JSON (Content-Type: application/json)'));
  }
  if (type !== undefined && type.includes('charset') && !UTF8_CHARSET.test(type)) {
    return Promise.reject(new BrokerError('invalid_request', 'the body must be UTF-8'));
  }
  return new Promise<string>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    const onData = (chunk: Buffer) => {
      if (failed) return;
      size += chunk.length;
      if (size > limit) {
        failed = true;
        req.off('data', onData);
        req.resume(); // discard the rest; the response closes the connection
        reject(new BrokerError('payload_too_large', `the body is larger than ${limit / 1024} KiB`));
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => {
      if (!failed) resolve(chunks.length === 1 ? (chunks[0] as Buffer).toString('utf8') : Buffer.concat(chunks).toString('utf8'));
    });
    req.once('error', (err) => {
      if (failed) return;
      failed = true;
      reject(new BrokerError('invalid_request', 'the request body could not be read', { cause: err }));
    });
  });
}
