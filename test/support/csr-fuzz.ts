/**
 * Structure-aware fuzzing of the CSR reader (src/adapters/ca/csr.ts over der.ts), shared by the test suite (a smaller
 * count) and `npm run fuzz:csr` (the full count). Real CSRs — made by our own builder and by @peculiar/x509 — are
 * parsed into a tree of DER elements; each mutation changes one thing in that tree (a byte, a tag, a length, an OID
 * arc, an element deleted, duplicated, moved or swapped for one from another CSR) and writes it back, re-signing the
 * request info with the seed's key so that a mutant can get past the signature check. Every mutant must be refused
 * with invalid_request or accepted; every accepted one must read the same in @peculiar/x509 (public key, SANs, CA
 * rights, extension types). Deterministic: a seed and an iteration number name each mutant.
 */
import { KeyObject, sign, webcrypto, type KeyObject as Key } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { checkProofOfPossession, readCertificationRequest, type CertificationRequest } from '../../src/adapters/ca/csr.js';
import { toPem } from '../../src/adapters/ca/der.js';
import { buildCertificationRequest, csrExtension, subjectAltName } from '../../src/adapters/ca/request.js';
import { isBrokerError } from '../../src/core/errors.js';
import { seededRandom } from './seeded-random.js';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const IDENTITY = 'deploy.ci.serviceaccount.identity.linkerd.cluster.local';
const SPIFFE_ID = 'spiffe://cluster.local/ns/ci/sa/deploy';

/** A DER element as a tree: constructed elements (and OCTET STRINGs holding exactly one DER value) have children. */
interface Node {
  tag: number;
  bytes: Buffer;
  children: Node[] | undefined;
}

export interface Seed {
  readonly name: string;
  readonly der: Buffer;
  readonly key: Key;
}

export interface FuzzSummary {
  readonly mutants: number;
  readonly accepted: number;
  readonly refused: number;
  /** Mutants whose bytes equal their seed's (a mutation that changed nothing); still checked. */
  readonly unchanged: number;
}

export class FuzzFinding extends Error {
  override readonly name = 'FuzzFinding';
}


/** Parses DER leniently into a tree (the fuzzer's own reader; any length form it can follow). */
function parseTree(input: Buffer): Node[] | undefined {
  const nodes: Node[] = [];
  let offset = 0;
  while (offset < input.length) {
    if (offset + 2 > input.length) return undefined;
    const tag = input[offset] as number;
    let length = input[offset + 1] as number;
    let start = offset + 2;
    if (length & 0x80) {
      const count = length & 0x7f;
      if (count === 0 || count > 3 || start + count > input.length) return undefined;
      length = 0;
      for (let i = 0; i < count; i += 1) length = length * 256 + (input[start + i] as number);
      start += count;
    }
    if (start + length > input.length) return undefined;
    const bytes = input.subarray(start, start + length);
    const constructed = (tag & 0x20) !== 0;
    const inner = constructed || tag === 0x04 ? parseTree(bytes) : undefined;
    const children = constructed ? inner : inner?.length === 1 ? inner : undefined;
    if (constructed && children === undefined) return undefined;
    nodes.push({ tag, bytes, children });
    offset = start + length;
  }
  return nodes;
}

function lengthBytes(length: number): Buffer {
  if (length < 0x80) return Buffer.from([length]);
  const bytes: number[] = [];
  for (let rest = length; rest > 0; rest = Math.floor(rest / 256)) bytes.unshift(rest & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function serialize(node: Node): Buffer {
  const body = node.children ? Buffer.concat(node.children.map(serialize)) : node.bytes;
  return Buffer.concat([Buffer.from([node.tag]), lengthBytes(body.length), body]);
}

function clone(node: Node): Node {
  return { tag: node.tag, bytes: node.bytes, children: node.children?.map(clone) };
}

/** Every node with its parent list and index, depth first. */
function walk(nodes: Node[], out: Array<{ node: Node; siblings: Node[]; index: number }> = []) {
  nodes.forEach((node, index) => {
    out.push({ node, siblings: nodes, index });
    if (node.children) walk(node.children, out);
  });
  return out;
}

const INTERESTING_BYTES = [0x00, 0x01, 0x02, 0x04, 0x05, 0x06, 0x0c, 0x30, 0x31, 0x7f, 0x80, 0x81, 0x82, 0xa0, 0x82, 0x86, 0xff];
const TAGS = [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x0c, 0x13, 0x16, 0x17, 0x30, 0x31, 0x80, 0x82, 0x86, 0x87, 0xa0, 0xa3, 0x1f];

/** Elements worth grafting into other CSRs: SAN entries, extensions, BOOLEAN TRUE, OIDs, from every seed. */
function donorsOf(seeds: readonly Seed[]): Node[] {
  const donors: Node[] = [];
  for (const seed of seeds) for (const { node } of walk(parseTree(seed.der) ?? [])) if (serialize(node).length < 200) donors.push(node);
  return donors;
}

type Mutation = (root: Node[], pick: <T>(items: readonly T[]) => T, next: () => number, donors: readonly Node[]) => Buffer | undefined;

const MUTATIONS: readonly Mutation[] = [
  // One content byte replaced (leaves only: constructed contents are mutated through their children).
  (root, pick, next) => {
    const leaves = walk(root).filter(({ node }) => !node.children && node.bytes.length > 0);
    if (leaves.length === 0) return undefined;
    const { node } = pick(leaves);
    const bytes = Buffer.from(node.bytes);
    bytes[Math.floor(next() * bytes.length)] = next() < 0.5 ? pick(INTERESTING_BYTES) : Math.floor(next() * 256);
    node.bytes = bytes;
    return undefined;
  },
  // A tag changed.
  (root, pick) => {
    const all = walk(root);
    if (all.length > 0) pick(all).node.tag = pick(TAGS);
    return undefined;
  },
  // An element deleted, duplicated, or moved to the end of its list.
  (root, pick, next) => {
    const all = walk(root);
    if (all.length === 0) return undefined;
    const { siblings, index } = pick(all);
    const [node] = siblings.splice(index, 1) as [Node];
    const roll = next();
    if (roll < 0.4) siblings.splice(index, 0, node, clone(node));
    else if (roll < 0.7) siblings.push(node);
    return undefined;
  },
  // An element replaced by, or followed by, one from another CSR.
  (root, pick, next, donors) => {
    const all = walk(root);
    if (all.length === 0) return undefined;
    const { siblings, index } = pick(all);
    siblings.splice(index, next() < 0.5 ? 1 : 0, clone(pick(donors)));
    return undefined;
  },
  // An OID arc truncated, padded (leading 0x80) or extended.
  (root, pick) => {
    const oids = walk(root).filter(({ node }) => node.tag === 0x06 && !node.children);
    if (oids.length === 0) return undefined;
    const { node } = pick(oids);
    const variants = [
      Buffer.concat([node.bytes, Buffer.from([0x81])]),
      node.bytes.subarray(0, Math.max(0, node.bytes.length - 1)),
      Buffer.concat([node.bytes.subarray(0, 2), Buffer.from([0x80]), node.bytes.subarray(2)]),
      Buffer.concat([node.bytes, Buffer.from([0x01])]),
      Buffer.from(node.bytes.map((byte, i) => (i === node.bytes.length - 1 ? byte | 0x80 : byte))),
    ];
    node.bytes = pick(variants);
    return undefined;
  },
  // Raw damage after serialising: a length byte changed, bytes cut, inserted or appended (lengths no longer agree).
  (root, pick, next) => {
    const bytes = Buffer.concat(root.map(serialize));
    const at = Math.floor(next() * bytes.length);
    const roll = next();
    if (roll < 0.3) return Buffer.concat([bytes.subarray(0, at), Buffer.from([pick(INTERESTING_BYTES)]), bytes.subarray(at + 1)]);
    if (roll < 0.5) return bytes.subarray(0, at);
    if (roll < 0.7) return Buffer.concat([bytes.subarray(0, at), Buffer.from([pick(INTERESTING_BYTES)]), bytes.subarray(at)]);
    if (roll < 0.85) return Buffer.concat([bytes, Buffer.from([0, 0])]);
    // A length in a longer form than needed (not DER): 0x81 0x05 for 5, at the first element.
    const first = root[0];
    if (!first?.children) return undefined;
    const body = Buffer.concat(first.children.map(serialize));
    return Buffer.concat([Buffer.from([first.tag, 0x83, body.length >> 16, (body.length >> 8) & 0xff, body.length & 0xff]), body]);
  },
];

interface Mutant {
  /** The mutant with the seed's signature (wrong for a mutated request info; enough for the reader's structure checks). */
  readonly der: Buffer;
  /** The same request info signed with the seed's key, when the mutation was inside it. */
  resign(): Buffer;
}

/**
 * One mutant. Most mutations are inside the CertificationRequestInfo and can be re-signed with the seed's key, so a
 * mutant can get past the signature check; the others damage the algorithm, the signature or the outer framing.
 */
function mutate(seed: Seed, donors: readonly Node[], next: () => number): Mutant {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)] as T;
  const root = parseTree(seed.der) as Node[];
  const request = root[0] as Node;
  const [info, algorithm, signatureBits] = request.children as [Node, Node, Node];
  const insideInfo = next() < 0.85;
  const target = insideInfo ? [info] : root;
  const mutation = pick(MUTATIONS);
  const rounds = next() < 0.8 ? 1 : 2;
  let raw: Buffer | undefined;
  for (let round = 0; round < rounds && raw === undefined; round += 1) raw = mutation(target, pick, next, donors);
  if (!insideInfo) {
    const der = raw ?? serialize(request);
    return { der, resign: () => der };
  }
  const infoBytes = raw ?? Buffer.concat(target.map(serialize));
  const assemble = (bits: Buffer): Buffer => {
    const body = Buffer.concat([infoBytes, serialize(algorithm), bits]);
    return Buffer.concat([Buffer.from([0x30]), lengthBytes(body.length), body]);
  };
  return {
    der: assemble(serialize(signatureBits)),
    resign: () => {
      const signature = sign('sha256', infoBytes, seed.key);
      return assemble(Buffer.concat([Buffer.from([0x03]), lengthBytes(signature.length + 1), Buffer.from([0]), signature]));
    },
  };
}

function refusedAsInvalid(err: unknown): boolean {
  return isBrokerError(err) && err.code === 'invalid_request';
}

/** The reader's verdict alone: the parsed request, or undefined when it refuses the structure. */
function read(der: Buffer): CertificationRequest | undefined {
  try {
    return readCertificationRequest(toPem(der, 'CERTIFICATE REQUEST'));
  } catch (err) {
    if (refusedAsInvalid(err)) return undefined;
    throw err;
  }
}

/** Our whole verdict: the reader and the proof of possession accept it. */
function ours(der: Buffer): CertificationRequest | undefined {
  const request = read(der);
  if (!request) return undefined;
  try {
    checkProofOfPossession(request);
    return request;
  } catch (err) {
    if (refusedAsInvalid(err)) return undefined;
    throw err;
  }
}

const KEY_CERT_SIGN_OR_CRL_SIGN = x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign;
const TOLERATED = new Set(['2.5.29.17', '2.5.29.19', '2.5.29.15', '2.5.29.37', '2.5.29.14']);

/** What @peculiar/x509 reads from the same bytes, in the shape of our CertificationRequest. */
function theirs(der: Buffer): { spki: Buffer; dnsNames: string[]; uris: string[]; requestsCa: boolean; types: string[] } {
  const csr = new x509.Pkcs10CertificateRequest(der);
  const dnsNames: string[] = [];
  const uris: string[] = [];
  let requestsCa = false;
  for (const extension of csr.extensions) {
    if (extension instanceof x509.SubjectAlternativeNameExtension) {
      for (const name of extension.names.items) {
        if (name.type === 'dns') dnsNames.push(name.value);
        else if (name.type === 'url') uris.push(name.value);
        else dnsNames.push(`(${name.type})`);
      }
    } else if (extension instanceof x509.BasicConstraintsExtension) requestsCa ||= extension.ca;
    else if (extension instanceof x509.KeyUsagesExtension) requestsCa ||= (extension.usages & KEY_CERT_SIGN_OR_CRL_SIGN) !== 0;
  }
  return { spki: Buffer.from(csr.publicKey.rawData), dnsNames, uris, requestsCa, types: csr.extensions.map((extension) => extension.type) };
}

function compare(der: Buffer, accepted: CertificationRequest, where: string): void {
  let reference: ReturnType<typeof theirs>;
  try {
    reference = theirs(der);
  } catch (err) {
    throw new FuzzFinding(`${where}: accepted, but @peculiar/x509 cannot parse it (${(err as Error).message})\n${toPem(der, 'CERTIFICATE REQUEST')}`);
  }
  const differences: string[] = [];
  if (!reference.spki.equals(accepted.subjectPublicKeyInfo)) differences.push('subject public key');
  if (JSON.stringify(reference.dnsNames) !== JSON.stringify(accepted.dnsNames)) differences.push(`DNS names ${JSON.stringify(reference.dnsNames)} vs ${JSON.stringify(accepted.dnsNames)}`);
  if (JSON.stringify(reference.uris) !== JSON.stringify(accepted.uris)) differences.push(`URIs ${JSON.stringify(reference.uris)} vs ${JSON.stringify(accepted.uris)}`);
  if (reference.requestsCa !== accepted.requestsCa) differences.push(`CA rights ${reference.requestsCa} vs ${accepted.requestsCa}`);
  const unknown = reference.types.filter((type) => !TOLERATED.has(type));
  if (unknown.length > 0) differences.push(`extensions we should have refused: ${unknown.join(', ')}`);
  if (new Set(reference.types).size !== reference.types.length) differences.push(`a repeated extension: ${reference.types.join(', ')}`);
  if (differences.length > 0) throw new FuzzFinding(`${where}: accepted, but @peculiar/x509 reads it differently: ${differences.join('; ')}\n${toPem(der, 'CERTIFICATE REQUEST')}`);
}

/** Real CSRs to start from: our builder's shapes and @peculiar/x509's generator. */
export async function makeSeeds(): Promise<Seed[]> {
  const seeds: Seed[] = [];
  const ecKey = () => webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
  const ours = async (name: string, extensions: Buffer[], commonName?: string) => {
    const { privateKey } = await ecKey();
    const key = KeyObject.from(privateKey);
    const pem = buildCertificationRequest(key, extensions, commonName);
    seeds.push({ name, der: Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ''), 'base64'), key });
  };
  await ours('no extensions', []);
  await ours('DNS and SPIFFE identity', [subjectAltName({ dnsNames: [IDENTITY], uris: [SPIFFE_ID] })], 'deploy');
  await ours('end-entity constraints, EKU, critical key usage', [
    csrExtension('2.5.29.19', Buffer.from('3000', 'hex'), true),
    csrExtension('2.5.29.37', Buffer.from('300a06082b06010505070302', 'hex')),
    csrExtension('2.5.29.15', Buffer.from('03020780', 'hex'), true),
  ]);
  const keys = await ecKey();
  const generated = await x509.Pkcs10CertificateRequestGenerator.create({
    name: 'CN=deploy, O=payments',
    keys,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: [
      new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: IDENTITY }, { type: 'url', value: SPIFFE_ID }]),
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
    attributes: [new x509.ChallengePasswordAttribute('not-a-secret')],
  });
  seeds.push({ name: '@peculiar/x509 generator', der: Buffer.from(generated.rawData), key: KeyObject.from(keys.privateKey) });
  return seeds;
}

export interface FuzzOptions {
  /**
   * Most time one mutant's parse may take (default 1 s; a parse takes well under a millisecond): more is a FuzzFinding
   * naming the mutant, so input that makes the reader slow fails the run. Measured after the synchronous parse
   * returns, so a reader that never returns is left to the test runner's timeout.
   */
  readonly parseLimitMs?: number;
}

/**
 * Runs `count` mutants from `seed` over the seeds in turn; throws FuzzFinding on the first disagreement or slow parse
 * and lets any other error (a crash of the reader) through with the mutant attached.
 */
export function fuzzCsrReader(seeds: readonly Seed[], count: number, seed: number, options: FuzzOptions = {}): FuzzSummary {
  const parseLimitMs = options.parseLimitMs ?? 1000;
  for (const original of seeds) {
    const accepted = ours(original.der);
    if (!accepted) throw new FuzzFinding(`seed ${original.name} is refused; the fuzzer needs accepted seeds`);
    compare(original.der, accepted, `seed ${original.name}`);
  }
  const donors = donorsOf(seeds);
  const next = seededRandom(seed);
  let acceptedCount = 0;
  let unchanged = 0;
  for (let i = 0; i < count; i += 1) {
    const original = seeds[i % seeds.length] as Seed;
    const mutant = mutate(original, donors, next);
    const where = `seed ${seed}, mutant ${i} (from ${original.name})`;
    let der = mutant.der;
    let accepted: CertificationRequest | undefined;
    let parseNs = 0n;
    const timed = <T>(parse: () => T): T => {
      const started = process.hrtime.bigint();
      try {
        return parse();
      } finally {
        parseNs += process.hrtime.bigint() - started;
      }
    };
    try {
      // Signing costs more than reading: only a mutant whose structure the reader accepts is re-signed and read again.
      if (timed(() => read(der))) {
        der = mutant.resign();
        accepted = timed(() => ours(der));
      }
    } catch (err) {
      throw new FuzzFinding(`${where}: the reader threw ${String(err)}\n${toPem(der, 'CERTIFICATE REQUEST')}`, { cause: err });
    }
    const parseMs = Number(parseNs) / 1e6;
    if (parseMs > parseLimitMs) throw new FuzzFinding(`${where}: parsing took ${parseMs.toFixed(3)} ms, over the limit of ${parseLimitMs} ms per mutant\n${toPem(der, 'CERTIFICATE REQUEST')}`);
    if (der.equals(original.der)) unchanged += 1;
    if (accepted) {
      acceptedCount += 1;
      compare(der, accepted, where);
    }
  }
  return { mutants: count, accepted: acceptedCount, refused: count - acceptedCount, unchanged };
}
