/**
 * `oidc-broker linkerd render --policy PATH`: the mesh side of the linkerd grant. For every identity the policy can
 * grant, a MeshTLSAuthentication naming it in both forms Linkerd matches (the DNS identity the proxy reads from the
 * first SAN, and the SPIFFE ID) and an AuthorizationPolicy template that lets it reach one Server.
 */
import type { Command } from 'commander';
import { stringify } from 'yaml';
import { loadPolicy } from '../../adapters/policy/load.js';
import { linkerdIdentity } from '../../core/linkerd.js';
import { PolicyError, type CompiledPolicy } from '../../core/policy/compile.js';
import { EXIT } from '../output.js';

export interface RenderOptions {
  readonly trustDomain: string;
  readonly controlPlaneNamespace: string;
  /** The Server (policy.linkerd.io) the AuthorizationPolicy templates target. */
  readonly server: string;
  /** Namespace of the protected workload; omitted to let `kubectl -n` decide. */
  readonly targetNamespace: string | undefined;
}

export interface GrantedIdentity {
  readonly serviceAccount: string;
  readonly namespace: string;
  readonly rules: readonly string[];
}

export type KubernetesObject = Record<string, unknown> & { readonly kind: string };

export interface RenderedIdentity {
  readonly identity: GrantedIdentity;
  readonly resources: readonly KubernetesObject[];
}

/** Every distinct (service account, namespace) a rule grants, with the rules that grant it, in policy order. */
export function grantedIdentities(policy: CompiledPolicy): GrantedIdentity[] {
  const byKey = new Map<string, { serviceAccount: string; namespace: string; rules: string[] }>();
  for (const rule of policy.rules) {
    const grant = rule.grant.linkerd;
    if (!grant) continue;
    const key = `${grant.namespace}/${grant.serviceAccount}`;
    const entry = byKey.get(key) ?? { serviceAccount: grant.serviceAccount, namespace: grant.namespace, rules: [] };
    entry.rules.push(rule.name);
    byKey.set(key, entry);
  }
  return [...byKey.values()];
}

function metadata(name: string, options: RenderOptions, identity: GrantedIdentity): Record<string, unknown> {
  return {
    name,
    ...(options.targetNamespace ? { namespace: options.targetNamespace } : {}),
    labels: { 'app.kubernetes.io/managed-by': 'oidc-broker' },
    annotations: { 'oidc-broker.dev/rules': identity.rules.join(',') },
  };
}

/** The Kubernetes objects for each granted identity (pure; validated against the Linkerd CRD schemas in tests). */
export function renderLinkerdResources(policy: CompiledPolicy, options: RenderOptions): RenderedIdentity[] {
  return grantedIdentities(policy).map((identity) => {
    const names = linkerdIdentity({ ...options, serviceAccount: identity.serviceAccount, namespace: identity.namespace });
    const name = `oidc-broker-${identity.namespace}-${identity.serviceAccount}`.slice(0, 253).replace(/-+$/, '');
    const authentication: KubernetesObject = {
      apiVersion: 'policy.linkerd.io/v1alpha1',
      kind: 'MeshTLSAuthentication',
      metadata: metadata(name, options, identity),
      spec: { identities: [names.dnsName, names.spiffeId] },
    };
    const authorization: KubernetesObject = {
      apiVersion: 'policy.linkerd.io/v1alpha1',
      kind: 'AuthorizationPolicy',
      metadata: metadata(name, options, identity),
      spec: {
        targetRef: { group: 'policy.linkerd.io', kind: 'Server', name: options.server },
        requiredAuthenticationRefs: [{ group: 'policy.linkerd.io', kind: 'MeshTLSAuthentication', name }],
      },
    };
    return { identity, resources: [authentication, authorization] };
  });
}

/** Multi-document YAML with a comment per identity saying which rules grant it. */
export function renderLinkerdYaml(rendered: readonly RenderedIdentity[], options: RenderOptions): string {
  const documents = rendered.map(({ identity, resources }) => {
    const header =
      `# CI identity ${identity.serviceAccount}.${identity.namespace}, granted by rule(s): ${identity.rules.join(', ')}\n` +
      `# Template: point targetRef at the Server to open to this identity (now "${options.server}").\n`;
    return header + resources.map((resource) => stringify(resource)).join('---\n');
  });
  return documents.join('---\n');
}

interface RenderFlags {
  readonly policy: string;
  readonly trustDomain: string;
  readonly controlPlaneNamespace: string;
  readonly server: string;
  readonly namespace?: string;
}

async function renderCommand(flags: RenderFlags): Promise<void> {
  let policy: CompiledPolicy;
  try {
    policy = await loadPolicy(flags.policy);
  } catch (err) {
    if (!(err instanceof PolicyError)) throw err;
    process.stderr.write(`policy ${flags.policy} is not valid:\n${err.message}\n`);
    process.exitCode = EXIT.denied;
    return;
  }
  const options: RenderOptions = {
    trustDomain: flags.trustDomain,
    controlPlaneNamespace: flags.controlPlaneNamespace,
    server: flags.server,
    targetNamespace: flags.namespace,
  };
  let rendered: RenderedIdentity[];
  try {
    rendered = renderLinkerdResources(policy, options);
  } catch (err) {
    if (!(err instanceof TypeError)) throw err;
    process.stderr.write(`${err.message}\n`);
    process.exitCode = EXIT.usage;
    return;
  }
  if (rendered.length === 0) {
    process.stderr.write(`the policy at ${flags.policy} grants no Linkerd identity\n`);
    return;
  }
  process.stdout.write(renderLinkerdYaml(rendered, options));
}

/** Adds `linkerd render`. */
export function registerLinkerdCommands(program: Command): void {
  const linkerd = program.command('linkerd').description('Linkerd mesh identities for CI jobs');
  linkerd
    .command('render')
    .description('print MeshTLSAuthentication and AuthorizationPolicy templates for the identities the policy grants')
    .requiredOption('--policy <path>', 'policy file or directory of *.yaml')
    .option('--trust-domain <domain>', 'the mesh trust domain', 'cluster.local')
    .option('--control-plane-namespace <namespace>', "Linkerd's control-plane namespace", 'linkerd')
    .option('--server <name>', 'the policy.linkerd.io Server the AuthorizationPolicy templates target', 'change-me')
    .option('--namespace <namespace>', 'namespace of the protected workload (default: leave to kubectl -n)')
    .action(renderCommand);
}
