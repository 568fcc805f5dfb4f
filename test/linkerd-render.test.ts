/** `linkerd render`: the rendered resources validate against Linkerd's CRD schemas, and the command prints them. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { Ajv } from 'ajv';
import { Command } from 'commander';
import { parse, parseAllDocuments } from 'yaml';
import { compilePolicy } from '../src/core/policy/compile.js';
import { registerLinkerdCommands, renderLinkerdResources } from '../src/cli/commands/linkerd.js';
import { IDENTITY, NAMING, SPIFFE_ID, scratchDir, writeFiles } from './linkerd-fixtures.js';

const CRD_DIR = fileURLToPath(new URL('../../test/fixtures/schemas/linkerd-crds/', import.meta.url));

/** One ajv validator per `<apiVersion>/<kind>`, from each CRD version's openAPIV3Schema. */
function crdValidators(): Map<string, (value: unknown) => boolean> {
  const ajv = new Ajv({ strict: false, allErrors: true });
  const validators = new Map<string, (value: unknown) => boolean>();
  for (const file of ['meshtls-authentication.yaml', 'authorization-policy.yaml']) {
    for (const document of parseAllDocuments(readFileSync(join(CRD_DIR, file), 'utf8'))) {
      const crd = document.toJS() as { spec: { group: string; names: { kind: string }; versions: Array<{ name: string; schema: { openAPIV3Schema: object } }> } };
      for (const version of crd.spec.versions) {
        const validate = ajv.compile(version.schema.openAPIV3Schema);
        validators.set(`${crd.spec.group}/${version.name}/${crd.spec.names.kind}`, (value) => {
          const ok = validate(value);
          if (!ok) assert.fail(JSON.stringify(validate.errors));
          return ok;
        });
      }
    }
  }
  return validators;
}

const POLICY_YAML = `version: 1
rules:
  - name: payments-migrate-production
    when: { project_id: "20", ref_path: refs/heads/main }
    grant:
      linkerd: { serviceAccount: deploy-payments, namespace: ci, lifetime: 10m }
  - name: payments-smoke
    when: { project_id: "20" }
    grant:
      linkerd: { serviceAccount: deploy-payments, namespace: ci }
  - name: tokens-only
    when: { project_id: "21" }
    grant: { token: { audiences: [https://deploy-api.internal] } }
`;

const OPTIONS = { ...NAMING, server: 'payments-api', targetNamespace: 'payments' };

describe('linkerd render', () => {
  const validators = crdValidators();
  const policy = compilePolicy([{ source: 'policy.yaml', data: parse(POLICY_YAML) }]);

  it('renders one MeshTLSAuthentication and one AuthorizationPolicy per granted identity, naming every granting rule', () => {
    const rendered = renderLinkerdResources(policy, OPTIONS);
    assert.equal(rendered.length, 1);
    assert.deepEqual(rendered[0]?.identity.rules, ['payments-migrate-production', 'payments-smoke']);
    assert.deepEqual(rendered[0]?.resources.map((resource) => resource.kind), ['MeshTLSAuthentication', 'AuthorizationPolicy']);
  });

  it('names the identity in both forms Linkerd matches: the DNS identity and the SPIFFE ID', () => {
    const [authentication] = renderLinkerdResources(policy, OPTIONS)[0]?.resources ?? [];
    assert.deepEqual((authentication?.spec as { identities: string[] }).identities, [IDENTITY, SPIFFE_ID]);
  });

  it('every rendered resource validates against the Linkerd CRD schema of its apiVersion and kind', () => {
    for (const { resources } of renderLinkerdResources(policy, OPTIONS)) {
      for (const resource of resources) {
        const validate = validators.get(`${String(resource.apiVersion)}/${resource.kind}`);
        assert.ok(validate, `no CRD schema for ${String(resource.apiVersion)} ${resource.kind}`);
        assert.ok(validate(resource));
      }
    }
  });

  it('the CRD validator is not vacuous: identities and identityRefs together are refused', () => {
    const validate = validators.get('policy.linkerd.io/v1alpha1/MeshTLSAuthentication');
    const both = { spec: { identities: [IDENTITY], identityRefs: [{ kind: 'ServiceAccount', name: 'deploy-payments' }] } };
    assert.throws(() => validate?.(both));
  });

  it('the command prints YAML documents that parse back to the same resources', async () => {
    const paths = writeFiles(scratchDir(), { 'policy.yaml': POLICY_YAML });
    const written: string[] = [];
    const write = process.stdout.write.bind(process.stdout);
    // The test runner talks to its parent over stdout in Buffers while we capture: pass those through.
    process.stdout.write = ((chunk: string | Uint8Array, ...rest: never[]) =>
      typeof chunk === 'string' ? written.push(chunk) > 0 : write(chunk, ...rest)) as typeof process.stdout.write;
    try {
      const program = new Command().exitOverride();
      registerLinkerdCommands(program);
      await program.parseAsync(['linkerd', 'render', '--policy', paths['policy.yaml'] as string, '--server', 'payments-api', '--namespace', 'payments'], { from: 'user' });
    } finally {
      process.stdout.write = write;
    }
    const documents = parseAllDocuments(written.join('')).map((document) => document.toJS() as { kind: string });
    assert.deepEqual(documents, renderLinkerdResources(policy, OPTIONS)[0]?.resources);
    assert.match(written.join(''), /granted by rule\(s\): payments-migrate-production, payments-smoke/);
  });
});
