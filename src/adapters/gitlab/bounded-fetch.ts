/**
 * Issuer documents (discovery, JWKS) are read through a fetch that stops at 1 MiB, like the GitLab API client's bound.
 */
import { Buffer } from 'node:buffer';

/** A discovery document is a few KiB and GitLab's key set smaller still; a larger answer is not the document we asked for. */
export const MAX_ISSUER_DOCUMENT_BYTES = 1024 * 1024;

export class DocumentTooLarge extends Error {
  override readonly name = 'DocumentTooLarge';
}

/** Statuses whose Response may not carry a body (the Fetch standard's null body statuses). */
const NULL_BODY_STATUS = new Set([101, 103, 204, 205, 304]);

/**
 * fetch, but the body is read here, at most MAX_ISSUER_DOCUMENT_BYTES of it (a declared Content-Length over the bound is
 * refused before reading), and handed on as a buffered Response. The caller's AbortSignal still bounds the time.
 */
export async function boundedFetch(url: string, init: RequestInit): Promise<Response> {
  const response = await fetch(url, init);
  const declared = Number(response.headers.get('content-length') ?? 0);
  if (declared > MAX_ISSUER_DOCUMENT_BYTES) {
    await response.body?.cancel();
    throw new DocumentTooLarge(`${new URL(url).pathname}: Content-Length ${declared} is over ${MAX_ISSUER_DOCUMENT_BYTES} bytes`);
  }
  if (response.body === null || NULL_BODY_STATUS.has(response.status)) return response;
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
    total += chunk.byteLength;
    if (total > MAX_ISSUER_DOCUMENT_BYTES) {
      // Leaving the loop cancels the stream, which closes the connection: nothing past the bound is read.
      throw new DocumentTooLarge(`${new URL(url).pathname}: more than ${MAX_ISSUER_DOCUMENT_BYTES} bytes`);
    }
    chunks.push(chunk);
  }
  return new Response(Buffer.concat(chunks), { status: response.status, statusText: response.statusText, headers: response.headers });
}

export function tooLarge(err: unknown): DocumentTooLarge | undefined {
  for (let current: unknown = err, depth = 0; current instanceof Error && depth < 5; current = current.cause, depth++) {
    if (current instanceof DocumentTooLarge) return current;
  }
  return undefined;
}
