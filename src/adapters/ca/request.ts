/**
 * The job side of the linkerd grant: a P-256 key made where the job runs (it never leaves) and a PKCS#10 request for
 * it. Synchronous and fast (~100 µs), so the CLI, tests and benchmarks can all use it.
 */
import { createPublicKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import {
  TAG, bitString, contextTag, objectIdentifier, octetString, sequence, tlv, toPem, utf8String,
} from './der.js';

const ECDSA_WITH_SHA256 = sequence(objectIdentifier('1.2.840.10045.4.3.2'));
const EXTENSION_REQUEST = objectIdentifier('1.2.840.113549.1.9.14');

export interface RequestedNames {
  readonly dnsNames?: readonly string[];
  readonly uris?: readonly string[];
}

/** One X.509 Extension as DER, for building requests (including deliberately bad ones in tests). */
export function csrExtension(oid: string, value: Buffer, critical = false): Buffer {
  return critical
    ? sequence(objectIdentifier(oid), tlv(TAG.boolean, Buffer.from([0xff])), octetString(value))
    : sequence(objectIdentifier(oid), octetString(value));
}

/** subjectAltName with the given DNS names and URIs. */
export function subjectAltName(names: RequestedNames): Buffer {
  return csrExtension(
    '2.5.29.17',
    sequence(
      ...(names.dnsNames ?? []).map((name) => tlv(contextTag(2, false), Buffer.from(name, 'latin1'))),
      ...(names.uris ?? []).map((uri) => tlv(contextTag(6, false), Buffer.from(uri, 'latin1'))),
    ),
  );
}

/**
 * A PEM CSR for the private `key` asking for `extensions` (already DER), signed with ecdsa-with-SHA256.
 * @example buildCertificationRequest(privateKey, [subjectAltName({ dnsNames: ['deploy.ci.serviceaccount.identity.linkerd.cluster.local'] })])
 */
export function buildCertificationRequest(key: KeyObject, extensions: readonly Buffer[] = [], commonName?: string): string {
  const spki = createPublicKey(key).export({ format: 'der', type: 'spki' });
  const subject = commonName === undefined
    ? sequence()
    : sequence(tlv(TAG.set, sequence(objectIdentifier('2.5.4.3'), utf8String(commonName))));
  const attributes = extensions.length === 0
    ? tlv(contextTag(0, true))
    : tlv(contextTag(0, true), sequence(EXTENSION_REQUEST, tlv(TAG.set, sequence(...extensions))));
  const info = sequence(tlv(TAG.integer, Buffer.from([0])), subject, spki, attributes);
  const signature = sign('sha256', info, key);
  return toPem(sequence(info, ECDSA_WITH_SHA256, bitString(signature)), 'CERTIFICATE REQUEST');
}

export interface KeyAndRequest {
  /** PKCS#8 PEM; write it with mode 0600 and never send it anywhere. */
  readonly privateKeyPem: string;
  readonly csrPem: string;
}

/** A fresh P-256 key and a CSR for it; names are optional (the broker fills in the identity the rule grants). */
export function generateKeyAndRequest(names: RequestedNames = {}): KeyAndRequest {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const extensions = (names.dnsNames?.length ?? 0) + (names.uris?.length ?? 0) > 0 ? [subjectAltName(names)] : [];
  return {
    privateKeyPem: privateKey.export({ format: 'pem', type: 'pkcs8' }) as string,
    csrPem: buildCertificationRequest(privateKey, extensions),
  };
}
