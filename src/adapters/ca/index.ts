/**
 * The Linkerd certificate authority (the CertificateAuthority port): issues short-lived mesh identities under the
 * mesh trust anchor from a CI job's CSR. See docs/linkerd.md for the profile and how to create the issuer.
 */
import { readFileSync } from 'node:fs';
import { BrokerError, isBrokerError } from '../../core/errors.js';
import type { LinkerdMint } from '../../core/grants.js';
import { certificateValidity, linkerdIdentity, provenanceOf } from '../../core/linkerd.js';
import type { CertificateAuthority, IssuedCertificate, MintContext } from '../../ports.js';
import { checkProofOfPossession, checkRequestedNames, readCertificationRequest } from './csr.js';
import { toPem } from './der.js';
import { CaSetupError, chainConsumerProblems, checkValidAt, issuerWarnings, loadIssuerMaterial, subjectKeyIdOf, subjectNameOf, type CaPems } from './issuer.js';
import { createLeafSigner } from './leaf.js';

export { CaSetupError } from './issuer.js';
export type { CaPems } from './issuer.js';

export interface MeshNaming {
  readonly trustDomain: string;
  readonly controlPlaneNamespace: string;
}

/** The `linkerd` section of the broker config (CONTRACT.md §4). */
export interface LinkerdCaFiles extends MeshNaming {
  readonly issuerCertFile: string;
  readonly issuerKeyFile: string;
  readonly trustAnchorsFile: string;
}

function readPems(files: LinkerdCaFiles): CaPems {
  const read = (path: string, role: string): string => {
    try {
      return readFileSync(path, 'utf8');
    } catch (err) {
      throw new CaSetupError(`${role}: cannot read ${path}`, { cause: err });
    }
  };
  return {
    issuerCertPem: read(files.issuerCertFile, 'linkerd.issuerCertFile'),
    issuerKeyPem: read(files.issuerKeyFile, 'linkerd.issuerKeyFile'),
    trustAnchorsPem: read(files.trustAnchorsFile, 'linkerd.trustAnchorsFile'),
  };
}

/**
 * Load the issuer from files and verify it at `now`; throws CaSetupError (a clear message naming the file's role and
 * the problem) so the broker refuses to start.
 * @example const ca = createCertificateAuthority(config.linkerd, clock.now());
 */
export function createCertificateAuthority(files: LinkerdCaFiles, now: Date): CertificateAuthority {
  return createCertificateAuthorityFromPems(files, readPems(files), now);
}

/** The same from PEM text (dev mode, tests). */
export function createCertificateAuthorityFromPems(naming: MeshNaming, pems: CaPems, now: Date): CertificateAuthority {
  const material = loadIssuerMaterial(pems);
  checkValidAt(material, now);
  const problems = Object.freeze(chainConsumerProblems(material));
  const signLeaf = createLeafSigner({
    issuerName: subjectNameOf(material.issuer),
    issuerKeyId: subjectKeyIdOf(material.issuer),
    scheme: material.scheme,
    key: material.key,
  });
  const unusable = (cause: unknown): BrokerError =>
    new BrokerError('upstream_unavailable', 'the certificate authority is not usable', { cause });

  function issueNow(plan: LinkerdMint, context: MintContext): IssuedCertificate {
    const identity = linkerdIdentity({ ...naming, serviceAccount: plan.serviceAccount, namespace: plan.namespace });
    const request = readCertificationRequest(plan.csr);
    checkRequestedNames(request, identity);
    checkProofOfPossession(request);
    checkValidAt(material, context.now);
    const validity = certificateValidity({
      now: context.now,
      requestedNotAfter: plan.notAfter,
      issuerNotBefore: material.notBefore,
      issuerNotAfter: material.notAfter,
    });
    if (validity === undefined) throw new BrokerError('token_expired', 'the ID token expires before a certificate could be issued');
    const leaf = signLeaf({
      identity,
      subjectPublicKeyInfo: request.subjectPublicKeyInfo,
      validity,
      provenance: provenanceOf({ principal: context.principal }),
    });
    return {
      certificate: toPem(leaf.der, 'CERTIFICATE'),
      chain: material.chainPem,
      trustAnchors: material.anchorsPem,
      identity: identity.dnsName,
      spiffeId: identity.spiffeId,
      serialNumber: leaf.serialNumber,
      expiresAt: validity.notAfter,
    };
  }

  return {
    async issue(plan, context) {
      try {
        return issueNow(plan, context);
      } catch (err) {
        // Caller mistakes keep their code; anything else (an expired chain, a signing failure) is the CA failing.
        if (isBrokerError(err)) throw err;
        throw unusable(err);
      }
    },
    trustAnchorsPem: () => material.anchorsPem,
    check(now) {
      try {
        checkValidAt(material, now);
      } catch (err) {
        throw unusable(err);
      }
    },
    consumerProblems: () => problems,
  };
}

export interface CaDoctorReport {
  readonly ok: boolean;
  readonly errors: readonly string[];
  readonly warnings: readonly string[];
}

/**
 * `doctor`'s view of the CA: errors that would stop the broker or make mesh consumers refuse its certificates, and
 * warnings (no name constraints, expiry within 7 days). Never throws for a CA problem.
 */
export function doctorCa(files: LinkerdCaFiles, now: Date): CaDoctorReport {
  try {
    const material = loadIssuerMaterial(readPems(files));
    checkValidAt(material, now);
    const errors = chainConsumerProblems(material);
    return { ok: errors.length === 0, errors, warnings: issuerWarnings(material, now) };
  } catch (err) {
    if (!(err instanceof CaSetupError)) throw err;
    return { ok: false, errors: [err.message], warnings: [] };
  }
}
