/**
 * An in-memory trust anchor and issuer for `oidc-broker dev` and tests: the same CertificateAuthority the broker uses
 * with files, plus the PEMs. The issuer is name-constrained to the mesh's identity names, as docs/linkerd.md recommends
 * for a real issuer. Built with @peculiar/x509 (slow, but only a handful of certificates at start).
 */
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import type { CertificateAuthority } from '../../ports.js';
import { contextTag, sequence, tlv } from './der.js';
import { createCertificateAuthorityFromPems, type CaPems, type MeshNaming } from './index.js';

x509.cryptoProvider.set(webcrypto);

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

const EC_P256 = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const ECDSA_SHA256 = { name: 'ECDSA', hash: 'SHA-256' } as const;
const HOUR_MS = 3600 * 1000;

export interface CaMaterialOptions extends MeshNaming {
  readonly now?: Date;
  readonly anchorNotAfter?: Date;
  readonly issuerNotBefore?: Date;
  readonly issuerNotAfter?: Date;
  /** Limit the issuer to one namespace's identities, or (default) to the mesh's identities; false for none. */
  readonly nameConstraints?: false | { readonly namespace?: string };
  /** Sign the issuer with this anchor instead of a new one (to build chains that do or do not match a bundle). */
  readonly anchor?: { readonly certificatePem: string; readonly keys: CryptoKeyPair };
  readonly commonName?: string;
}

export interface CaMaterial extends CaPems {
  readonly anchor: { readonly certificatePem: string; readonly keys: CryptoKeyPair };
}

/**
 * RFC 5280 NameConstraints permitting only the mesh's DNS identities (or one namespace's): the name Linkerd authorises
 * by, which every consumer evaluates. No URI constraint: Linkerd's proxy (rustls-webpki 0.103.12 and later) rejects
 * any chain that carries one (docs/linkerd.md).
 */
export function meshNameConstraints(naming: MeshNaming, namespace?: string): x509.Extension {
  const serviceAccounts = `serviceaccount.identity.${naming.controlPlaneNamespace}.${naming.trustDomain}`;
  const dns = namespace === undefined ? serviceAccounts : `${namespace}.${serviceAccounts}`;
  const permitted = tlv(contextTag(0, true), sequence(tlv(contextTag(2, false), Buffer.from(dns, 'latin1'))));
  return new x509.Extension('2.5.29.30', true, sequence(permitted));
}

async function newKeys(): Promise<CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(EC_P256, true, ['sign', 'verify'])) as CryptoKeyPair;
}

async function privateKeyPem(key: CryptoKey): Promise<string> {
  return x509.PemConverter.encode(await webcrypto.subtle.exportKey('pkcs8', key), 'PRIVATE KEY');
}

async function caExtensions(publicKey: CryptoKey, pathLength: number | undefined): Promise<x509.Extension[]> {
  return [
    new x509.BasicConstraintsExtension(true, pathLength, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
    await x509.SubjectKeyIdentifierExtension.create(publicKey),
  ];
}

/** A trust anchor (new, or the given one) and an issuer under it, as PEM. */
export async function generateCaMaterial(options: CaMaterialOptions): Promise<CaMaterial> {
  const now = options.now ?? new Date();
  let anchor = options.anchor;
  if (anchor === undefined) {
    const keys = await newKeys();
    const certificate = await x509.X509CertificateGenerator.createSelfSigned({
      name: `CN=root.${options.controlPlaneNamespace}.${options.trustDomain}`,
      keys,
      notBefore: new Date(now.getTime() - HOUR_MS),
      notAfter: options.anchorNotAfter ?? new Date(now.getTime() + 24 * 365 * HOUR_MS),
      signingAlgorithm: ECDSA_SHA256,
      extensions: await caExtensions(keys.publicKey, undefined),
    });
    anchor = { certificatePem: certificate.toString('pem'), keys };
  }
  const anchorCertificate = new x509.X509Certificate(anchor.certificatePem);
  const issuerKeys = await newKeys();
  const extensions = await caExtensions(issuerKeys.publicKey, 0);
  extensions.push(await x509.AuthorityKeyIdentifierExtension.create(anchor.keys.publicKey));
  if (options.nameConstraints !== false) extensions.push(meshNameConstraints(options, options.nameConstraints?.namespace));
  const issuer = await x509.X509CertificateGenerator.create({
    subject: `CN=${options.commonName ?? `identity.${options.controlPlaneNamespace}.${options.trustDomain}`}`,
    issuer: anchorCertificate.subject,
    publicKey: issuerKeys.publicKey,
    signingKey: anchor.keys.privateKey,
    notBefore: options.issuerNotBefore ?? new Date(now.getTime() - HOUR_MS),
    notAfter: options.issuerNotAfter ?? new Date(now.getTime() + 24 * 30 * HOUR_MS),
    signingAlgorithm: ECDSA_SHA256,
    extensions,
  });
  return {
    issuerCertPem: issuer.toString('pem'),
    issuerKeyPem: await privateKeyPem(issuerKeys.privateKey),
    trustAnchorsPem: anchor.certificatePem,
    anchor,
  };
}

export interface EphemeralCa extends CaPems {
  readonly ca: CertificateAuthority;
}

/**
 * A fresh anchor and name-constrained issuer, in memory, for dev mode and tests.
 * @example const { ca, trustAnchorsPem } = await createEphemeralCa({ trustDomain: 'cluster.local', controlPlaneNamespace: 'linkerd' });
 */
export async function createEphemeralCa(naming: MeshNaming, now: Date = new Date()): Promise<EphemeralCa> {
  const material = await generateCaMaterial({ ...naming, now });
  const pems = { issuerCertPem: material.issuerCertPem, issuerKeyPem: material.issuerKeyPem, trustAnchorsPem: material.trustAnchorsPem };
  return { ...pems, ca: createCertificateAuthorityFromPems(naming, pems, now) };
}
