/**
 * The issuer certificate, its key and the trust anchors: parsed once at start and checked before the broker serves a
 * single request (the issuer chains to an anchor, is a CA allowed to sign certificates, is valid now, and the key is
 * the issuer's). Signatures and key checks use node:crypto synchronously; @peculiar/x509 reads extensions.
 */
import 'reflect-metadata';
import { X509Certificate as NodeCertificate, createPrivateKey, type KeyObject } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { consumerProblems } from './consumers.js';
import { TAG, children, encoded, expectTag, objectIdentifier, readElement, sequence, tlv } from './der.js';
import type { SignatureScheme } from './leaf.js';

/** A problem with the CA files or their contents; the message names the file's role and what is wrong. */
export class CaSetupError extends Error {
  override readonly name = 'CaSetupError';
}

export interface CaPems {
  /** The issuer certificate, optionally followed by intermediates up to (not including) an anchor. */
  readonly issuerCertPem: string;
  readonly issuerKeyPem: string;
  readonly trustAnchorsPem: string;
}

export interface LoadedCertificate {
  readonly node: NodeCertificate;
  readonly parsed: x509.X509Certificate;
  readonly pem: string;
}

export interface IssuerMaterial {
  readonly issuer: LoadedCertificate;
  readonly intermediates: readonly LoadedCertificate[];
  readonly anchors: readonly LoadedCertificate[];
  /** The anchor the issuer chains to (the issuer itself when it is an anchor). */
  readonly anchor: LoadedCertificate;
  readonly key: KeyObject;
  readonly scheme: SignatureScheme;
  /** PEM of the issuer and intermediates, sent with every leaf. */
  readonly chainPem: string;
  readonly anchorsPem: string;
  /** The window in which every certificate from the issuer up to its anchor is valid. */
  readonly notBefore: Date;
  readonly notAfter: Date;
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]+-----END CERTIFICATE-----/g;
const NAME_CONSTRAINTS = '2.5.29.30';

function readCertificates(pem: string, role: string): LoadedCertificate[] {
  const blocks = pem.match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0) throw new CaSetupError(`${role}: no PEM CERTIFICATE found`);
  return blocks.map((block, index) => {
    try {
      return { node: new NodeCertificate(block), parsed: new x509.X509Certificate(block), pem: `${block.trim()}\n` };
    } catch (err) {
      throw new CaSetupError(`${role}: certificate ${index + 1} cannot be parsed`, { cause: err });
    }
  });
}

function schemeFor(key: KeyObject): SignatureScheme {
  const curve = key.asymmetricKeyDetails?.namedCurve;
  if (key.asymmetricKeyType === 'ec' && curve === 'prime256v1') {
    return { hash: 'sha256', algorithmIdentifier: sequence(objectIdentifier('1.2.840.10045.4.3.2')) };
  }
  if (key.asymmetricKeyType === 'ec' && curve === 'secp384r1') {
    return { hash: 'sha384', algorithmIdentifier: sequence(objectIdentifier('1.2.840.10045.4.3.3')) };
  }
  if (key.asymmetricKeyType === 'rsa') {
    return { hash: 'sha256', algorithmIdentifier: sequence(objectIdentifier('1.2.840.113549.1.1.11'), tlv(TAG.null)) };
  }
  throw new CaSetupError(`issuer key: ${key.asymmetricKeyType ?? 'unknown'} ${curve ?? ''} keys are not supported (use ECDSA P-256)`);
}

function describe(certificate: LoadedCertificate): string {
  return `"${certificate.parsed.subject}"`;
}

function issues(parent: LoadedCertificate, child: LoadedCertificate): boolean {
  return child.node.checkIssued(parent.node) && child.node.verify(parent.node.publicKey);
}

function sameCertificate(a: LoadedCertificate, b: LoadedCertificate): boolean {
  return a.node.raw.equals(b.node.raw);
}

/** Parse the PEMs, match the key to the issuer and find the anchor the chain ends at. Throws CaSetupError. */
export function loadIssuerMaterial(pems: CaPems): IssuerMaterial {
  const [issuer, ...intermediates] = readCertificates(pems.issuerCertPem, 'issuer certificate');
  const anchors = readCertificates(pems.trustAnchorsPem, 'trust anchors');
  if (issuer === undefined) throw new CaSetupError('issuer certificate: missing');
  let key: KeyObject;
  try {
    key = createPrivateKey(pems.issuerKeyPem);
  } catch (err) {
    throw new CaSetupError('issuer key: not a readable unencrypted PEM private key', { cause: err });
  }
  if (!issuer.node.checkPrivateKey(key)) throw new CaSetupError(`issuer key: does not match the issuer certificate ${describe(issuer)}`);
  const chain = [issuer, ...intermediates];
  for (const [index, child] of chain.entries()) {
    const parent = chain[index + 1];
    if (parent && !issues(parent, child)) {
      throw new CaSetupError(`issuer certificate: ${describe(child)} is not signed by the next certificate in the file, ${describe(parent)}`);
    }
  }
  const top = chain[chain.length - 1] as LoadedCertificate;
  const anchor = anchors.find((candidate) => sameCertificate(candidate, top)) ?? anchors.find((candidate) => issues(candidate, top));
  if (anchor === undefined) {
    throw new CaSetupError(`issuer certificate: ${describe(top)} does not chain to any certificate in the trust anchors file`);
  }
  const path = sameCertificate(anchor, top) ? chain : [...chain, anchor];
  for (const certificate of path) {
    const constraints = certificate.parsed.getExtension(x509.BasicConstraintsExtension);
    if (!constraints?.ca) throw new CaSetupError(`issuer certificate: ${describe(certificate)} is not a CA (basicConstraints CA:TRUE missing)`);
    const usages = certificate.parsed.getExtension(x509.KeyUsagesExtension);
    if (usages && (usages.usages & x509.KeyUsageFlags.keyCertSign) === 0) {
      throw new CaSetupError(`issuer certificate: ${describe(certificate)} may not sign certificates (keyUsage lacks keyCertSign)`);
    }
  }
  return {
    issuer,
    intermediates,
    anchors,
    anchor,
    key,
    scheme: schemeFor(key),
    chainPem: chain.map((certificate) => certificate.pem).join(''),
    anchorsPem: anchors.map((certificate) => certificate.pem).join(''),
    notBefore: new Date(Math.max(...path.map((certificate) => certificate.parsed.notBefore.getTime()))),
    notAfter: new Date(Math.min(...path.map((certificate) => certificate.parsed.notAfter.getTime()))),
  };
}

/** Throws CaSetupError unless every certificate from the issuer to its anchor is valid at `now`. */
export function checkValidAt(material: IssuerMaterial, now: Date): void {
  if (now.getTime() < material.notBefore.getTime()) {
    throw new CaSetupError(`issuer certificate: the chain is not valid before ${material.notBefore.toISOString()}`);
  }
  if (now.getTime() >= material.notAfter.getTime()) {
    throw new CaSetupError(`issuer certificate: the chain expired at ${material.notAfter.toISOString()}`);
  }
}

/** The issuer's subject Name as DER, byte for byte, so that leaves chain by exact name match. */
export function subjectNameOf(certificate: LoadedCertificate): Buffer {
  const der = certificate.node.raw;
  const tbs = children(expectTag(readElement(der, 0), TAG.sequence, 'Certificate'))[0];
  const fields = children(expectTag(tbs, TAG.sequence, 'TBSCertificate'));
  const offset = fields[0]?.tag === 0xa0 ? 1 : 0; // explicit version present
  return Buffer.from(encoded(expectTag(fields[offset + 4], TAG.sequence, 'subject')));
}

export function subjectKeyIdOf(certificate: LoadedCertificate): Buffer | undefined {
  const extension = certificate.parsed.getExtension(x509.SubjectKeyIdentifierExtension);
  return extension ? Buffer.from(extension.keyId, 'hex') : undefined;
}

const WARN_BEFORE_EXPIRY_MS = 7 * 24 * 3600 * 1000;

/** What `doctor` should warn about: an issuer that can sign any mesh identity, or one about to expire. */
export function issuerWarnings(material: IssuerMaterial, now: Date): string[] {
  const warnings: string[] = [];
  const constrained = [material.issuer, ...material.intermediates].some((certificate) => certificate.parsed.getExtension(NAME_CONSTRAINTS) !== null);
  if (!constrained) {
    warnings.push('the Linkerd issuer has no name constraints: it can sign any identity in the mesh (see docs/linkerd.md)');
  }
  const remaining = material.notAfter.getTime() - now.getTime();
  if (remaining < WARN_BEFORE_EXPIRY_MS) {
    warnings.push(`the Linkerd issuer chain expires at ${material.notAfter.toISOString()} (within 7 days)`);
  }
  return warnings;
}

/**
 * Why a mesh consumer would refuse the chain from the issuer up to its anchor (a URI name constraint, an OID arc above
 * 2^28), one sentence each; empty when none would. An error in `doctor`, a warning at start.
 */
export function chainConsumerProblems(material: IssuerMaterial): string[] {
  const chain = [material.issuer, ...material.intermediates];
  const path = chain.some((certificate) => sameCertificate(certificate, material.anchor)) ? chain : [...chain, material.anchor];
  return consumerProblems(path.map((certificate) => ({ name: describe(certificate), der: certificate.node.raw })));
}
