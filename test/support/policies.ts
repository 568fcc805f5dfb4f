/** Policies the HTTP tests run against. */
export const AUDIENCE = 'https://broker.test';
export const DEPLOY_AUDIENCE = 'https://deploy-api.internal';

export const CORE_POLICY = `
version: 1
rules:
  - name: payments-deploy-production
    when:
      project_id: "20"
      project_path: payments/api
      ref_path: refs/heads/main
      ref_protected: true
      environment: production
      ci_config_ref_uri: gitlab.example.com/payments/api//.gitlab-ci.yml@refs/heads/main
    grant:
      token: { audiences: [${DEPLOY_AUDIENCE}, https://second.internal], lifetime: 10m }
  - name: payments-review
    when:
      project_id: "20"
      environment: { glob: "review/*" }
    require: { jobRunning: false }
    grant:
      token: { audiences: [https://review.internal], lifetime: 5m }
  - name: payments-release-tags
    when:
      project_id: "20"
      ref_path: { regex: "refs/tags/v[0-9]+\\\\.[0-9]+\\\\.[0-9]+" }
      ref_protected: "true"
    grant:
      token: { audiences: [https://release.internal], lifetime: 5m }
  - name: platform-fork-tolerant
    description: deliberately allows fork pipelines, to show sameProject can be turned off
    when:
      project_id: "77"
    require: { sameProject: false, jobRunning: false }
    grant:
      token: { audiences: [https://platform.internal] }
`;
