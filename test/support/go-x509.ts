/**
 * Go's crypto/x509 as a judge of our certificates: test/support/x509-verify.go (standard library only) is built once
 * per suite into a temp dir, offline, with the Go toolchain from Debian's golang-go (scripts/ensure-tools.sh).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

// From dist/test/support back to the repository's test/support, where the Go source lives.
const SOURCE = fileURLToPath(new URL('../../../test/support/x509-verify.go', import.meta.url));

/** What Go made of a leaf and its chain; `ok` only when every certificate parsed and both verifications passed. */
export interface GoVerdict {
  readonly ok: boolean;
  readonly dnsNames: readonly string[] | null;
  readonly uris: readonly string[] | null;
  readonly commonName: string;
  readonly notBefore: string;
  readonly notAfter: string;
  readonly unhandledCriticalExtensions: readonly string[] | null;
  readonly serverAuth: string;
  readonly clientAuth: string;
  readonly error?: string;
}

export interface GoVerifier {
  /** x509.ParseCertificate each PEM, then Verify the leaf for `dnsName` with server and with client auth. */
  verify(leafPem: string, chainPem: string, anchorsPem: string, dnsName: string): GoVerdict;
  dispose(): void;
}

export function buildGoVerifier(): GoVerifier {
  const dir = mkdtempSync(join(tmpdir(), 'go-x509-'));
  const binary = join(dir, 'x509-verify');
  // Everything Go writes stays in the temp dir, and it never reaches for the network or another toolchain.
  const env = { ...process.env, GOCACHE: join(dir, 'cache'), GOPATH: join(dir, 'gopath'), GOTOOLCHAIN: 'local', GOPROXY: 'off', GOFLAGS: '' };
  execFileSync('go', ['build', '-o', binary, SOURCE], { cwd: dir, env, stdio: ['ignore', 'ignore', 'pipe'] });
  let run = 0;
  return {
    verify(leafPem, chainPem, anchorsPem, dnsName) {
      run += 1;
      const paths = ['leaf', 'chain', 'anchors'].map((name) => join(dir, `${name}-${run}.pem`));
      [leafPem, chainPem, anchorsPem].forEach((pem, index) => writeFileSync(paths[index] as string, pem));
      const result = spawnSync(binary, [...paths, dnsName], { encoding: 'utf8', timeout: 10_000 });
      if (result.status !== 0 && result.status !== 1) throw new Error(`x509-verify exited ${result.status}: ${result.stderr}`);
      return { ok: result.status === 0, ...(JSON.parse(result.stdout) as Omit<GoVerdict, 'ok'>) };
    },
    dispose: () => rmSync(dir, { recursive: true, force: true }),
  };
}
