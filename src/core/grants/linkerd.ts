/**
 * The `linkerd` grant: an X.509 leaf certificate for a Linkerd mesh identity, signed by the mesh's issuer for a CSR
 * whose key never leaves the job (the adapter lives in src/adapters/linkerd/, the identity names in ../linkerd.ts).
 */
import { z } from 'zod';
import { isoTimeSchema, lifetimeSchema, type GrantModule } from './module.js';

const MAX_CSR_LENGTH = 16 * 1024;
const dnsLabel = z.string().regex(/^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/, 'must be a lower-case DNS label (≤ 63 chars)');

export const linkerdPolicySchema = z.strictObject({
  serviceAccount: dnsLabel,
  namespace: dnsLabel,
  lifetime: lifetimeSchema(24 * 3600, '1h'),
});

export const linkerdRequestSchema = z.strictObject({ csr: z.string().min(1).max(MAX_CSR_LENGTH) });

export type LinkerdGrantSpec = z.output<typeof linkerdPolicySchema>;
export type LinkerdGrantRequest = z.output<typeof linkerdRequestSchema>;

export interface LinkerdMint {
  readonly kind: 'linkerd';
  readonly serviceAccount: string;
  readonly namespace: string;
  readonly csr: string;
  readonly notAfter: Date;
}

export interface IssuedCertificate {
  readonly certificate: string;
  readonly chain: string;
  readonly trustAnchors: string;
  readonly identity: string;
  readonly spiffeId: string;
  readonly serialNumber: string;
  readonly expiresAt: Date;
}

const linkerdResponseSchema = z.object({
  certificate: z.string().min(1),
  chain: z.string(),
  trustAnchors: z.string().min(1),
  identity: z.string(),
  spiffeId: z.string(),
  serialNumber: z.string(),
  expiresAt: isoTimeSchema,
});

export const LINKERD_HARD_CAP_SECONDS = 24 * 3600;

export const linkerdGrant: GrantModule<'linkerd', LinkerdGrantSpec, LinkerdGrantRequest, LinkerdMint, IssuedCertificate> = {
  kind: 'linkerd',
  title: 'Linkerd mesh identity',
  description: 'A leaf certificate for `<serviceAccount>.<namespace>.serviceaccount.identity.<controlPlaneNamespace>.<trustDomain>` (and its SPIFFE ID), for a CSR made in the job, with the issuer chain and the trust anchors.',
  configSection: 'linkerd',
  mintsUpstream: false,
  hardCapSeconds: LINKERD_HARD_CAP_SECONDS,
  policySchema: linkerdPolicySchema,
  requestSchema: linkerdRequestSchema,
  check: (allowed) =>
    allowed ? { ok: true, detail: `identity ${allowed.serviceAccount}.${allowed.namespace}` } : { ok: false, detail: 'the rule grants no Linkerd identity' },
  plan: (allowed, request, expiry) => ({ kind: 'linkerd', serviceAccount: allowed.serviceAccount, namespace: allowed.namespace, csr: request.csr, notAfter: expiry.at }),
  // The identity comes from the rule; a refresh only brings a new CSR (a new key) for it.
  sessionScope: () => ({}),
  withinSession: (_scope, request) => ({ request }),
  overlaps: (earlier, later) =>
    earlier.serviceAccount === later.serviceAccount && earlier.namespace === later.namespace ? `linkerd identity ${later.serviceAccount}.${later.namespace}` : undefined,
  auditSummary: (minted) => ({ kind: 'linkerd', identity: minted.identity, spiffeId: minted.spiffeId, serialNumber: minted.serialNumber, expiresAt: minted.expiresAt }),
  cli: {
    needsKeyPair: true,
    request: (_argument, material) => ({ csr: material.csrPem }),
    responseSchema: linkerdResponseSchema,
    output(granted, material, dir) {
      if (material.privateKeyPem === undefined) return { files: [], env: [] };
      const cert = linkerdResponseSchema.parse(granted);
      const files = { cert: `${dir}/linkerd/tls.crt`, key: `${dir}/linkerd/tls.key`, ca: `${dir}/linkerd/ca.crt` };
      return {
        // tls.crt holds the leaf then the intermediates, which is what curl, Go and Node send as a client chain.
        files: [
          { path: files.cert, content: `${cert.certificate}${cert.chain}`, mode: 0o644 },
          { path: files.key, content: material.privateKeyPem, mode: 0o600 },
          { path: files.ca, content: cert.trustAnchors, mode: 0o644 },
        ],
        env: [['LINKERD_IDENTITY', cert.identity], ['LINKERD_SPIFFE_ID', cert.spiffeId], ['LINKERD_TLS_CERT_FILE', files.cert],
          ['LINKERD_TLS_KEY_FILE', files.key], ['LINKERD_CA_FILE', files.ca], ['LINKERD_CERT_EXPIRES_AT', cert.expiresAt]],
      };
    },
  },
};
