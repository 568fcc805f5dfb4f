/**
 * What the mesh's certificate consumers refuse, checked on the DER. openssl accepts both of these, so tests with
 * openssl alone cannot see them:
 * - Go's crypto/x509 (Linkerd's control plane and CLI, Kubernetes, Vault, cert-manager, SPIRE) cannot parse a
 *   certificate holding an OID with an arc above 2^31; RFC 5280 only promises 2^28 and several libraries stop there.
 * - Linkerd's proxy verifies with rustls-webpki, which from 0.103.12 (RUSTSEC-2026-0098) rejects every chain in which
 *   any certificate carries a URI name constraint.
 */
import { DerError, TAG, children, content, expectTag, oidText, readElement, type DerElement } from './der.js';

/** The largest OID arc every consumer must handle (RFC 5280 §4.1.2.4 and appendix B). */
export const MAX_OID_ARC = 2n ** 28n;

const NAME_CONSTRAINTS = '2.5.29.30';
const URI_NAME = 0x86; // GeneralName uniformResourceIdentifier, [6] IMPLICIT IA5String
const CONSTRUCTED = 0x20;

export interface CertificateExtension {
  readonly oid: string;
  readonly critical: boolean;
  /** The OCTET STRING holding the extension's DER value. */
  readonly value: DerElement;
}

/** The Certificate element and the fields of its TBSCertificate. */
function readCertificate(der: Buffer): { whole: DerElement; tbsFields: DerElement[] } {
  const whole = expectTag(readElement(der, 0), TAG.sequence, 'Certificate');
  return { whole, tbsFields: children(expectTag(children(whole)[0], TAG.sequence, 'TBSCertificate')) };
}

/** The extensions of a DER certificate, in order. Throws DerError on a malformed certificate. */
export function extensionsOf(certificate: Buffer): CertificateExtension[] {
  const wrapper = readCertificate(certificate).tbsFields.find((field) => field.tag === 0xa3);
  if (wrapper === undefined) return [];
  return children(expectTag(children(wrapper)[0], TAG.sequence, 'Extensions')).map((extension) => {
    const [oid, second, third] = children(expectTag(extension, TAG.sequence, 'Extension'));
    const critical = second?.tag === TAG.boolean && content(second)[0] !== 0;
    const value = expectTag(second?.tag === TAG.boolean ? third : second, TAG.octetString, 'extnValue');
    return { oid: oidText(expectTag(oid, TAG.oid, 'extnID')), critical, value };
  });
}

function collectOids(element: DerElement, found: string[]): void {
  if (element.tag === TAG.oid) found.push(oidText(element));
  else if (element.tag & CONSTRUCTED) for (const child of children(element)) collectOids(child, found);
}

/**
 * Every OID in the certificate, dotted: in its structure (algorithms, names, extension ids) and inside each
 * extension's value. Keys and signatures are BIT STRINGs and are not searched.
 */
export function oidsIn(certificate: Buffer): string[] {
  const found: string[] = [];
  collectOids(readCertificate(certificate).whole, found);
  for (const extension of extensionsOf(certificate)) {
    try {
      collectOids(readElement(content(extension.value), 0), found);
    } catch (err) {
      // A value that is not DER holds no OID we could read; the consumer's own parser judges it.
      if (!(err instanceof DerError)) throw err;
    }
  }
  return found;
}

/** The OIDs in the certificate with an arc above 2^28. */
export function oversizedOids(certificate: Buffer): string[] {
  return oidsIn(certificate).filter((oid) => oid.split('.').some((arc) => BigInt(arc) > MAX_OID_ARC));
}

/** The URI subtrees of the certificate's name constraints, as `permitted URI:<base>` or `excluded URI:<base>`. */
export function uriNameConstraints(certificate: Buffer): string[] {
  const extension = extensionsOf(certificate).find((candidate) => candidate.oid === NAME_CONSTRAINTS);
  if (extension === undefined) return [];
  const constraints = expectTag(readElement(content(extension.value), 0), TAG.sequence, 'NameConstraints');
  const found: string[] = [];
  for (const subtrees of children(constraints)) {
    const kind = subtrees.tag === 0xa0 ? 'permitted' : 'excluded';
    for (const subtree of children(subtrees)) {
      const base = children(expectTag(subtree, TAG.sequence, 'GeneralSubtree'))[0];
      if (base?.tag === URI_NAME) found.push(`${kind} URI:${content(base).toString('latin1')}`);
    }
  }
  return found;
}

export interface NamedCertificate {
  /** How messages name the certificate, e.g. its subject in quotes. */
  readonly name: string;
  readonly der: Buffer;
}

function problemsOf({ name, der }: NamedCertificate): string[] {
  const problems: string[] = [];
  const uris = uriNameConstraints(der);
  if (uris.length > 0) {
    problems.push(
      `${name} has a URI name constraint (${uris.join(', ')}): Linkerd's proxy (rustls-webpki 0.103.12 and later, ` +
        'RUSTSEC-2026-0098) rejects every chain that carries one; constrain the issuer by DNS names only (see docs/linkerd.md)',
    );
  }
  const oids = [...new Set(oversizedOids(der))];
  if (oids.length > 0) {
    problems.push(
      `${name} carries OID ${oids.join(', ')} with an arc above 2^28: Go's crypto/x509 (Linkerd's control plane, ` +
        'Kubernetes, Vault, cert-manager) cannot parse the certificate',
    );
  }
  return problems;
}

/**
 * One sentence per certificate that a mesh consumer would refuse, with the reason; empty when every consumer accepts
 * the chain. A certificate our strict DER reader cannot walk is reported rather than thrown.
 * @example consumerProblems([{ name: '"CN=issuer"', der }]) // ['"CN=issuer" has a URI name constraint (permitted URI:cluster.local): …']
 */
export function consumerProblems(certificates: readonly NamedCertificate[]): string[] {
  const problems: string[] = [];
  for (const certificate of certificates) {
    try {
      problems.push(...problemsOf(certificate));
    } catch (err) {
      if (!(err instanceof DerError)) throw err;
      problems.push(`${certificate.name} could not be read to check what mesh consumers refuse: ${err.message}`);
    }
  }
  return problems;
}
