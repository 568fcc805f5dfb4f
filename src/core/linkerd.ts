/**
 * Linkerd mesh identities as data: the names a certificate carries, how long it may live, and the pipeline provenance
 * it records. Pure: the CA adapter (src/adapters/ca) turns these into DER and signs them.
 */
import type { GitLabPrincipal } from './claims.js';
import { HARD_CAP_SECONDS } from './grants.js';

/** Linkerd's own issuer back-dates leaves by 20 s so that a peer whose clock lags slightly still accepts them. */
export const CLOCK_SKEW_SECONDS = 20;

const DNS_LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const TRUST_DOMAIN = /^[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?$/;

export interface LinkerdIdentityParts {
  readonly serviceAccount: string;
  readonly namespace: string;
  readonly controlPlaneNamespace: string;
  readonly trustDomain: string;
}

/** The two names of one mesh identity, in the order they appear as SANs (the proxy takes the first it can parse). */
export interface LinkerdIdentity {
  /** `<sa>.<ns>.serviceaccount.identity.<controlPlaneNamespace>.<trustDomain>` */
  readonly dnsName: string;
  /** `spiffe://<trustDomain>/ns/<ns>/sa/<sa>` */
  readonly spiffeId: string;
}

/**
 * The DNS and SPIFFE names Linkerd gives a service account. Parts come from validated policy and config, so a bad
 * part is our own mistake (TypeError), not the caller's.
 * @example linkerdIdentity({ serviceAccount: 'deploy', namespace: 'ci', controlPlaneNamespace: 'linkerd', trustDomain: 'cluster.local' })
 *   // { dnsName: 'deploy.ci.serviceaccount.identity.linkerd.cluster.local', spiffeId: 'spiffe://cluster.local/ns/ci/sa/deploy' }
 */
export function linkerdIdentity(parts: LinkerdIdentityParts): LinkerdIdentity {
  for (const label of [parts.serviceAccount, parts.namespace, parts.controlPlaneNamespace]) {
    if (!DNS_LABEL.test(label)) throw new TypeError(`not a lower-case DNS label: ${JSON.stringify(label)}`);
  }
  if (!TRUST_DOMAIN.test(parts.trustDomain) || parts.trustDomain.split('.').some((label) => !DNS_LABEL.test(label))) {
    throw new TypeError(`not a DNS trust domain: ${JSON.stringify(parts.trustDomain)}`);
  }
  return {
    dnsName: `${parts.serviceAccount}.${parts.namespace}.serviceaccount.identity.${parts.controlPlaneNamespace}.${parts.trustDomain}`,
    spiffeId: `spiffe://${parts.trustDomain}/ns/${parts.namespace}/sa/${parts.serviceAccount}`,
  };
}

export interface ValidityInput {
  readonly now: Date;
  /** From planMints: already clamped to the rule's lifetime and the ID token's exp. */
  readonly requestedNotAfter: Date;
  readonly issuerNotBefore: Date;
  readonly issuerNotAfter: Date;
}

export interface Validity {
  readonly notBefore: Date;
  readonly notAfter: Date;
}

function floorToSecond(milliseconds: number): Date {
  return new Date(Math.floor(milliseconds / 1000) * 1000);
}

/**
 * The leaf's validity window: back-dated by the clock skew but never before the issuer's notBefore, and ending at the
 * earliest of the requested notAfter, now + 24 h and the issuer's notAfter (a leaf must not outlive its issuer).
 * X.509 times have whole seconds, so both ends are floored. Undefined when nothing of the window is left.
 */
export function certificateValidity(input: ValidityInput): Validity | undefined {
  const now = input.now.getTime();
  const notBefore = floorToSecond(Math.max(now - CLOCK_SKEW_SECONDS * 1000, input.issuerNotBefore.getTime()));
  const notAfter = floorToSecond(
    Math.min(input.requestedNotAfter.getTime(), now + HARD_CAP_SECONDS.linkerd * 1000, input.issuerNotAfter.getTime()),
  );
  return notAfter.getTime() > now ? { notBefore, notAfter } : undefined;
}

/** Sigstore's PEN; Fulcio's CI extensions live under `.1` (github.com/sigstore/fulcio docs/oid-info.md). */
const FULCIO = '1.3.6.1.4.1.57264.1';

export interface ProvenanceSource {
  readonly principal: GitLabPrincipal;
}

export interface ProvenanceField {
  readonly oid: string;
  readonly name: string;
  /** Where the value comes from, for docs/linkerd.md. */
  readonly source: string;
  value(from: ProvenanceSource): string | undefined;
}

function serverUrl(principal: GitLabPrincipal): string {
  return principal.iss.replace(/\/+$/, '');
}

/**
 * Every provenance extension a leaf may carry, each a non-critical extension whose value is a DER UTF8String (the
 * encoding Fulcio uses from .1.8 on). Fulcio's OIDs are reused with Fulcio's GitLab mapping where the meaning matches,
 * so tools that read Fulcio certificates can read ours. Only Fulcio's: an OID of our own would need an arc that every
 * consumer can parse (Go stops at 2^31, RFC 5280 promises 2^28), and what only we know (pipeline, rule, request id) is
 * in the audit record that the certificate's serial number points to (docs/linkerd.md).
 */
export const PROVENANCE_FIELDS: readonly ProvenanceField[] = [
  { oid: `${FULCIO}.8`, name: 'Issuer (V2)', source: 'iss', value: ({ principal }) => principal.iss },
  { oid: `${FULCIO}.11`, name: 'Runner Environment', source: 'runner_environment', value: ({ principal }) => principal.runner_environment },
  {
    oid: `${FULCIO}.12`, name: 'Source Repository URI', source: 'iss + "/" + project_path',
    value: ({ principal }) => `${serverUrl(principal)}/${principal.project_path}`,
  },
  { oid: `${FULCIO}.13`, name: 'Source Repository Digest', source: 'sha', value: ({ principal }) => principal.sha },
  { oid: `${FULCIO}.14`, name: 'Source Repository Ref', source: 'ref_path', value: ({ principal }) => principal.ref_path },
  { oid: `${FULCIO}.15`, name: 'Source Repository Identifier', source: 'project_id', value: ({ principal }) => principal.project_id },
  {
    oid: `${FULCIO}.18`, name: 'Build Config URI', source: '"https://" + ci_config_ref_uri',
    value: ({ principal }) => (principal.ci_config_ref_uri ? `https://${principal.ci_config_ref_uri}` : undefined),
  },
  { oid: `${FULCIO}.19`, name: 'Build Config Digest', source: 'ci_config_sha', value: ({ principal }) => principal.ci_config_sha },
  { oid: `${FULCIO}.20`, name: 'Build Trigger', source: 'pipeline_source', value: ({ principal }) => principal.pipeline_source },
  {
    oid: `${FULCIO}.21`, name: 'Run Invocation URI', source: 'iss + "/" + project_path + "/-/jobs/" + job_id',
    value: ({ principal }) => `${serverUrl(principal)}/${principal.project_path}/-/jobs/${principal.job_id}`,
  },
  { oid: `${FULCIO}.23`, name: 'Deployment Environment', source: 'environment', value: ({ principal }) => principal.environment },
];

export interface ProvenanceValue {
  readonly oid: string;
  readonly value: string;
}

/** The provenance a leaf carries for this exchange; claims that are absent or empty are left out. */
export function provenanceOf(from: ProvenanceSource): ProvenanceValue[] {
  const values: ProvenanceValue[] = [];
  for (const field of PROVENANCE_FIELDS) {
    const value = field.value(from);
    if (value !== undefined && value !== '') values.push({ oid: field.oid, value });
  }
  return values;
}
