/** The benchmark's policy: two rules, the first with `jobRunning: true` (bench/run.ts, bench/floor.ts). */
export const POLICY = `version: 1
rules:
  - name: payments-deploy-production
    when:
      project_id: "20"
      project_path: payments/api
      ref_path: refs/heads/main
      ref_protected: "true"
      environment: production
      ci_config_ref_uri: gitlab.example.com/payments/api//.gitlab-ci.yml@refs/heads/main
    require:
      jobRunning: true
    grant:
      token: { audiences: [https://deploy-api.internal], lifetime: 10m }
  - name: payments-review-apps
    when:
      project_id: "20"
      environment: { glob: "review/*" }
    grant:
      token: { audiences: [https://review-api.internal], lifetime: 5m }
`;

export const SCALE_ISSUERS = ['https://gitlab.example.com', 'https://gitlab.eu.example.com'] as const;

/** Where a team's rules live: most on the main instance, some on the second, some valid on either (no issuer). */
function teamIssuer(team: number): string | undefined {
  if (team % 10 === 1) return undefined;
  return team % 10 === 0 ? SCALE_ISSUERS[1] : SCALE_ISSUERS[0];
}

const issuerLine = (issuer: string | undefined) => (issuer === undefined ? '' : `    issuer: ${issuer}\n`);

/** A team's four rules, each kind as many teams write them. */
function teamRule(team: number, kind: number): string {
  const id = String(1000 + team);
  const path = `team-${team}/app`;
  const head = `  - name: team-${team}-`;
  const issuer = issuerLine(teamIssuer(team));
  switch (kind) {
    case 0:
      return `${head}deploy-production\n${issuer}    when: { project_id: "${id}", project_path: ${path}, ref_path: refs/heads/main, ref_protected: "true", environment: production, ci_config_ref_uri: gitlab.example.com/${path}//.gitlab-ci.yml@refs/heads/main }\n    require: { deploymentApprovals: { min: 1 } }\n    grant: { token: { audiences: [https://deploy-${team}.internal], lifetime: 10m } }\n`;
    case 1:
      return `${head}review-apps\n${issuer}    when: { project_id: "${id}", environment: { glob: "review/*" } }\n    grant: { token: { audiences: [https://review-${team}.internal], lifetime: 5m } }\n`;
    case 2:
      return `${head}staging\n${issuer}    when: { project_id: "${id}", ref_path: { glob: "refs/heads/*" }, environment: staging }\n    grant: { token: { audiences: [https://staging-${team}.internal] } }\n`;
    default:
      return `${head}artifacts\n${issuer}    when: { project_path: ${path}, ref_protected: "true" }\n    grant: { token: { audiences: [https://artifacts-${team}.internal] } }\n`;
  }
}

/** An organisation-wide rule bound by a namespace pattern, not an exact project: evaluated for every caller of its issuer. */
function platformRule(position: number): string {
  return `  - name: platform-ops-${position}\n${issuerLine(SCALE_ISSUERS[position % 2])}    when: { namespace_path: { glob: "platform-*" }, environment: { glob: "ops/*" } }\n    grant: { token: { audiences: [https://ops-${position}.internal] } }\n`;
}

/** The schema's limit per file; a larger policy is a directory of files, one per group of teams. */
export const RULES_PER_FILE = 1000;

/**
 * A many-teams policy of exactly `size` rules as YAML files: teams of four rules bound to their project (three by
 * project_id, one by project_path only), and one platform rule bound by a namespace pattern every 500 rules.
 */
export function manyTeamsPolicy(size: number): { files: string[]; teams: number } {
  const rules: string[] = [];
  let teamRules = 0;
  for (let position = 0; position < size; position += 1) {
    if (position % 500 === 5) rules.push(platformRule(position));
    else rules.push(teamRule(Math.floor(teamRules / 4), teamRules++ % 4));
  }
  const files: string[] = [];
  for (let start = 0; start < rules.length; start += RULES_PER_FILE) files.push(`version: 1\nrules:\n${rules.slice(start, start + RULES_PER_FILE).join('')}`);
  return { files, teams: Math.ceil(teamRules / 4) };
}

/** The claims of a job of `team`, for the environment given; its token comes from the team's instance. */
export function teamClaims(team: number, environment: string): Record<string, string> {
  return {
    iss: teamIssuer(team) ?? SCALE_ISSUERS[0],
    project_id: String(1000 + team),
    project_path: `team-${team}/app`,
    namespace_path: `team-${team}`,
    job_project_id: String(1000 + team),
    job_project_path: `team-${team}/app`,
    environment,
    ci_config_ref_uri: `gitlab.example.com/team-${team}/app//.gitlab-ci.yml@refs/heads/main`,
  };
}

/**
 * A one-rule policy for the dev token factory's default claims (project 20, payments/api, main, production), the
 * rule requiring a running job and granting `grants` (YAML flow mappings, one per line: `kind: { … }`).
 */
export function paymentsProductionPolicy(name: string, grants: readonly string[]): string {
  return `version: 1
rules:
  - name: ${name}
    when:
      project_id: "20"
      project_path: payments/api
      ref_path: refs/heads/main
      ref_protected: "true"
      environment: production
    require:
      jobRunning: true
    grant:
${grants.map((grant) => `      ${grant}\n`).join('')}`;
}
