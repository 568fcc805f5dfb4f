/**
 * Just enough DER to assemble a certificate's variable parts and to walk a CSR, on the hot path of every exchange.
 * General ASN.1 libraries (asn1js, @peculiar/asn1-schema) cost ~175 µs to parse one CSR; these helpers cost a few µs.
 * The reader is strict: definite lengths in minimal form and low tag numbers only, which is all DER allows for the
 * structures we read; anything else is a DerError.
 */

export class DerError extends Error {
  override readonly name = 'DerError';
}

export const TAG = {
  boolean: 0x01,
  integer: 0x02,
  bitString: 0x03,
  octetString: 0x04,
  null: 0x05,
  oid: 0x06,
  utf8String: 0x0c,
  sequence: 0x30,
  set: 0x31,
  utcTime: 0x17,
  generalizedTime: 0x18,
} as const;

/** Context-specific tag number n, constructed (EXPLICIT or constructed IMPLICIT) or primitive. */
export function contextTag(n: number, constructed: boolean): number {
  return (constructed ? 0xa0 : 0x80) | n;
}

/** One tag-length-value, encoded now; `parts` are concatenated as the content. */
export function tlv(tag: number, ...parts: readonly Der[]): Buffer {
  return encode(node(tag, ...parts));
}

export const sequence = (...parts: readonly Der[]): Buffer => tlv(TAG.sequence, ...parts);
export const utf8String = (value: string): Buffer => encode(text(TAG.utf8String, value));
export const octetString = (content: Buffer): Buffer => tlv(TAG.octetString, content);

/** A BIT STRING with no unused bits (signatures, key bits). */
export function bitString(content: Buffer): Buffer {
  return tlv(TAG.bitString, Buffer.from([0]), content);
}

/**
 * A DER value built as a tree and written into one buffer at the end. Each element's length is known when it is made,
 * so a certificate costs one allocation instead of hundreds of small Buffer.concat calls (~35 µs → a few µs).
 */
export type Der = Buffer | DerText | DerNode;

export interface DerText {
  readonly tag: number;
  readonly text: string;
  readonly encoding: 'utf8' | 'latin1';
  readonly length: number;
  readonly size: number;
}

export interface DerNode {
  readonly tag: number;
  readonly parts: readonly Der[];
  readonly length: number;
  readonly size: number;
}

function headerSize(length: number): number {
  return length < 0x80 ? 2 : length < 0x100 ? 3 : length < 0x10000 ? 4 : 5;
}

function sizeOf(value: Der): number {
  return value instanceof Uint8Array ? value.length : value.size;
}

/** A constructed (or primitive, when `parts` are raw bytes) element whose content is `parts`, in order. */
export function node(tag: number, ...parts: readonly Der[]): DerNode {
  let length = 0;
  for (const part of parts) length += sizeOf(part);
  return { tag, parts, length, size: headerSize(length) + length };
}

/** A string element (UTF8String, IA5String, or an implicitly tagged dNSName/URI) encoded straight into the output. */
export function text(tag: number, value: string, encoding: 'utf8' | 'latin1' = 'utf8'): DerText {
  const length = Buffer.byteLength(value, encoding);
  return { tag, text: value, encoding, length, size: headerSize(length) + length };
}

function writeHeader(out: Buffer, offset: number, tag: number, length: number): number {
  out[offset++] = tag;
  if (length >= 0x10000) {
    out[offset++] = 0x83;
    out[offset++] = length >> 16;
  } else if (length >= 0x100) out[offset++] = 0x82;
  else if (length >= 0x80) out[offset++] = 0x81;
  if (length >= 0x100) out[offset++] = (length >> 8) & 0xff;
  out[offset++] = length & 0xff;
  return offset;
}

function write(value: Der, out: Buffer, offset: number): number {
  if (value instanceof Uint8Array) {
    out.set(value, offset);
    return offset + value.length;
  }
  const start = writeHeader(out, offset, value.tag, value.length);
  if ('text' in value) return start + out.write(value.text, start, value.encoding);
  let cursor = start;
  for (const part of value.parts) cursor = write(part, out, cursor);
  return cursor;
}

/** Serialise a tree made with node()/text() (raw Buffers are copied as they are). */
export function encode(value: Der): Buffer {
  if (Buffer.isBuffer(value)) return value;
  const out = Buffer.allocUnsafe(value.size);
  write(value, out, 0);
  return out;
}

/** A non-negative INTEGER from big-endian bytes, adding the leading zero DER needs when the top bit is set. */
export function unsignedInteger(bytes: Buffer): Buffer {
  let start = 0;
  while (start < bytes.length - 1 && bytes[start] === 0) start += 1;
  const trimmed = bytes.subarray(start);
  return (trimmed[0] ?? 0) & 0x80 ? tlv(TAG.integer, Buffer.from([0]), trimmed) : tlv(TAG.integer, trimmed);
}

/** An OBJECT IDENTIFIER from dotted form; arcs may exceed 2^53 (UUID arcs under 2.25), hence BigInt. */
export function objectIdentifier(dotted: string): Buffer {
  const arcs = dotted.split('.').map((arc) => {
    if (!/^(?:0|[1-9][0-9]*)$/.test(arc)) throw new TypeError(`bad OID ${dotted}`);
    return BigInt(arc);
  });
  const [first, second, ...rest] = arcs;
  if (first === undefined || second === undefined || first > 2n) throw new TypeError(`bad OID ${dotted}`);
  const bytes: number[] = [];
  for (const arc of [first * 40n + second, ...rest]) {
    const groups: number[] = [Number(arc & 0x7fn)];
    for (let remaining = arc >> 7n; remaining > 0n; remaining >>= 7n) groups.unshift(Number(remaining & 0x7fn) | 0x80);
    bytes.push(...groups);
  }
  return tlv(TAG.oid, Buffer.from(bytes));
}

function twoDigits(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

/** RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050; always Zulu with seconds. */
export function x509Time(date: Date): Buffer {
  const year = date.getUTCFullYear();
  const rest =
    twoDigits(date.getUTCMonth() + 1) + twoDigits(date.getUTCDate()) + twoDigits(date.getUTCHours()) +
    twoDigits(date.getUTCMinutes()) + twoDigits(date.getUTCSeconds()) + 'Z';
  return year >= 1950 && year < 2050
    ? tlv(TAG.utcTime, Buffer.from(twoDigits(year % 100) + rest, 'latin1'))
    : tlv(TAG.generalizedTime, Buffer.from(String(year).padStart(4, '0') + rest, 'latin1'));
}

/** A parsed element: its tag, where its header and content lie, in the buffer it was read from. */
export interface DerElement {
  readonly tag: number;
  /** Offset of the tag byte. */
  readonly offset: number;
  /** Offset of the first content byte. */
  readonly start: number;
  /** Offset just past the element. */
  readonly end: number;
  readonly input: Buffer;
}

export function content(element: DerElement): Buffer {
  return element.input.subarray(element.start, element.end);
}

/** The element's bytes including its header. */
export function encoded(element: DerElement): Buffer {
  return element.input.subarray(element.offset, element.end);
}

/** Read the element starting at `offset`, which must end by `limit`. */
export function readElement(input: Buffer, offset: number, limit = input.length): DerElement {
  if (offset + 2 > limit) throw new DerError('truncated');
  const tag = input[offset] as number;
  if ((tag & 0x1f) === 0x1f) throw new DerError('high tag numbers are not used here');
  let length = input[offset + 1] as number;
  let start = offset + 2;
  if (length & 0x80) {
    const count = length & 0x7f;
    if (count === 0 || count > 3 || start + count > limit) throw new DerError('bad length');
    length = 0;
    for (let i = 0; i < count; i += 1) length = length * 256 + (input[start + i] as number);
    start += count;
    if (length < 0x80 || (count > 1 && input[offset + 2] === 0)) throw new DerError('length not minimal');
  }
  if (start + length > limit) throw new DerError('truncated');
  return { tag, offset, start, end: start + length, input };
}

/** The children of a constructed element, in order. */
export function children(parent: DerElement): DerElement[] {
  const result: DerElement[] = [];
  for (let offset = parent.start; offset < parent.end; ) {
    const child = readElement(parent.input, offset, parent.end);
    result.push(child);
    offset = child.end;
  }
  return result;
}

export function expectTag(element: DerElement | undefined, tag: number, what: string): DerElement {
  if (element === undefined || element.tag !== tag) throw new DerError(`expected ${what}`);
  return element;
}

/**
 * Dotted form of an OBJECT IDENTIFIER element (for messages and table lookups). Each arc must be complete and minimal
 * (X.690 §8.19.2): a last byte with its continuation bit set, or an arc starting with 0x80, is a DerError, so no
 * truncated or padded encoding can read as an OID we act on (`55 1d 11 81` is not subjectAltName).
 */
export function oidText(element: DerElement): string {
  const bytes = content(element);
  const arcs: bigint[] = [];
  let value = 0n;
  let arcStart = true;
  for (const byte of bytes) {
    if (arcStart && byte === 0x80) throw new DerError('OID arc not minimal');
    value = (value << 7n) | BigInt(byte & 0x7f);
    arcStart = (byte & 0x80) === 0;
    if (arcStart) {
      arcs.push(value);
      value = 0n;
    }
  }
  if (!arcStart) throw new DerError('truncated OID arc');
  const [head, ...rest] = arcs;
  if (head === undefined) throw new DerError('empty OID');
  const first = head < 80n ? head / 40n : 2n;
  return [first, head - first * 40n, ...rest].join('.');
}

/** PEM armour with 64-character lines. */
export function toPem(der: Buffer, label: string): string {
  const body = der.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${body}\n-----END ${label}-----\n`;
}

/** The DER inside the first PEM block with `label`, or undefined. */
export function fromPem(pem: string, label: string): Buffer | undefined {
  const begin = `-----BEGIN ${label}-----`;
  const from = pem.indexOf(begin);
  const to = pem.indexOf(`-----END ${label}-----`, from);
  if (from < 0 || to < 0) return undefined;
  const body = pem.slice(from + begin.length, to);
  if (!/^[A-Za-z0-9+/=\s]*$/.test(body)) return undefined;
  return Buffer.from(body.replace(/\s+/g, ''), 'base64');
}
