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
