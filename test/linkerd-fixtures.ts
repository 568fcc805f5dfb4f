/** Shared by the linkerd-* tests: a principal, a mint plan and context, files on disk, and openssl helpers. */
import { execFileSync, spawnSync } from 'node:child_process';
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { subjectOf, type GitLabPrincipal } from '../src/core/claims.js';
import type { LinkerdMint } from '../src/core/grants.js';
import { TAG, bitString, contextTag, objectIdentifier, sequence, tlv, toPem } from '../src/adapters/ca/der.js';
import type { MintContext } from '../src/ports.js';
import { principalOf } from './support/principals.js';

export const NAMING = { trustDomain: 'cluster.local', controlPlaneNamespace: 'linkerd' } as const;
export const IDENTITY = 'deploy-payments.ci.serviceaccount.identity.linkerd.cluster.local';
export const SPIFFE_ID = 'spiffe://cluster.local/ns/ci/sa/deploy-payments';

/** The tests' one principal (support/principals.ts), issued at `now`. */
export function principalAt(now: Date, overrides: Record<string, unknown> = {}): GitLabPrincipal {
  return principalOf(overrides, now);
}

export function contextAt(now: Date, overrides: Record<string, unknown> = {}): MintContext {
  const principal = principalAt(now, overrides);
  return { requestId: 'req-0001', rule: 'payments-migrate-production', subject: subjectOf(principal), principal, now };
}

export function planFor(csr: string, notAfter: Date, serviceAccount = 'deploy-payments', namespace = 'ci'): LinkerdMint {
  return { kind: 'linkerd', serviceAccount, namespace, csr, notAfter };
}

export const minutesAfter = (date: Date, minutes: number): Date => new Date(date.getTime() + minutes * 60_000);

/** A directory that the test run leaves behind in the OS temp dir (small PEM files only). */
export function scratchDir(): string {
  return mkdtempSync(join(tmpdir(), 'linkerd-test-'));
}

export function writeFiles(dir: string, files: Record<string, string>): Record<string, string> {
  const paths: Record<string, string> = {};
  for (const [name, content] of Object.entries(files)) {
    paths[name] = join(dir, name);
    writeFileSync(paths[name], content);
  }
  return paths;
}

/** `openssl verify -CAfile anchors -untrusted chain leaf` → { ok, output }. */
export function opensslVerify(dir: string, anchors: string, chain: string, leaf: string): { ok: boolean; output: string } {
  const paths = writeFiles(dir, { 'anchors.pem': anchors, 'chain.pem': chain, 'leaf.pem': leaf });
  const result = spawnSync('openssl', ['verify', '-CAfile', paths['anchors.pem'] as string, '-untrusted', paths['chain.pem'] as string, paths['leaf.pem'] as string], { encoding: 'utf8' });
  return { ok: result.status === 0, output: `${result.stdout}${result.stderr}` };
}

export function opensslText(dir: string, certificatePem: string): string {
  const paths = writeFiles(dir, { 'show.pem': certificatePem });
  return execFileSync('openssl', ['x509', '-noout', '-text', '-in', paths['show.pem'] as string], { encoding: 'utf8' });
}

/** A CSR made by openssl itself, for interop and for key types our own builder never makes. */
export function opensslCsr(dir: string, keyArgs: readonly string[], extraArgs: readonly string[] = []): string {
  const key = join(dir, `key-${Math.random().toString(36).slice(2)}.pem`);
  execFileSync('openssl', ['genpkey', ...keyArgs, '-out', key], { stdio: 'ignore' });
  return execFileSync('openssl', ['req', '-new', '-key', key, '-subj', '/CN=attacker.example', ...extraArgs], { encoding: 'utf8' });
}

/** A CSR carrying one key but signed by another: proof of possession must fail. */
export function csrSignedByAnotherKey(): string {
  const carried = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const signer: KeyObject = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  const spki = carried.publicKey.export({ format: 'der', type: 'spki' });
  const info = sequence(tlv(TAG.integer, Buffer.from([0])), sequence(), spki, tlv(contextTag(0, true)));
  const signature = sign('sha256', info, signer);
  return toPem(sequence(info, sequence(objectIdentifier('1.2.840.10045.4.3.2')), bitString(signature)), 'CERTIFICATE REQUEST');
}

const LINKERD_DOC = fileURLToPath(new URL('../../docs/linkerd.md', import.meta.url));

/** The first fenced block of `language` after `heading` in docs/linkerd.md: what we tell operators to run. */
export function linkerdDocBlock(heading: string, language: string): string {
  const doc = readFileSync(LINKERD_DOC, 'utf8');
  const from = doc.indexOf(`${heading}\n`);
  const block = from < 0 ? null : new RegExp(`\`\`\`${language}\n([\\s\\S]*?)\n\`\`\``).exec(doc.slice(from));
  if (!block?.[1]) throw new Error(`docs/linkerd.md has no ${language} block under ${heading}`);
  return block[1];
}

export interface RecipeIssuer {
  readonly issuerCertPem: string;
  readonly issuerKeyPem: string;
  readonly trustAnchorsPem: string;
  readonly files: { readonly issuerCertFile: string; readonly issuerKeyFile: string; readonly trustAnchorsFile: string };
}

/**
 * Runs the openssl issuer recipe from docs/linkerd.md in a fresh directory, under a fresh P-256 trust anchor made by
 * openssl. `edit` may change the recipe first (to build the profiles we must refuse from the one we teach).
 */
export function issuerFromDocsRecipe(edit: (script: string) => string = (script) => script): RecipeIssuer {
  const dir = scratchDir();
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt',
    '-subj', '/CN=root.linkerd.cluster.local', '-days', '365',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ], { cwd: dir, stdio: 'ignore' });
  execFileSync('bash', ['-euo', 'pipefail', '-c', edit(linkerdDocBlock('### With openssl', 'sh'))], { cwd: dir, stdio: 'ignore' });
  const files = { issuerCertFile: join(dir, 'issuer.crt'), issuerKeyFile: join(dir, 'issuer.key'), trustAnchorsFile: join(dir, 'ca.crt') };
  return {
    issuerCertPem: readFileSync(files.issuerCertFile, 'utf8'),
    issuerKeyPem: readFileSync(files.issuerKeyFile, 'utf8'),
    trustAnchorsPem: readFileSync(files.trustAnchorsFile, 'utf8'),
    files,
  };
}

/** The issuer profile docs/linkerd.md used to teach: DNS and URI name constraints (Linkerd's proxy refuses it). */
export const withUriNameConstraint = (script: string): string =>
  script.replace(/^(nameConstraints = .*)$/m, '$1, permitted;URI:cluster.local');

/** The former private provenance arc: a 128-bit UUID arc that Go's crypto/x509 cannot parse. */
export const FORMER_UUID_ARC = '2.25.107681443206632415690038753314996789099';

/** The recipe with one extension under the former UUID arc added to the issuer. */
export const withUuidArcExtension = (script: string): string =>
  script.replace(/^(nameConstraints = .*)$/m, `$1\n${FORMER_UUID_ARC}.1 = ASN1:UTF8String:574`);
