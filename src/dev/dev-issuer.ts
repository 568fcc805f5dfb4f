/**
 * DEVELOPMENT ONLY. A GitLab-like issuer served by the dev broker itself: discovery, keys, a token endpoint for
 * `oidc-broker dev token`, and a jobs API that says every job is running. Never mounted by `serve`.
 */
import express, { type Router } from 'express';
import { defaultIdTokenClaims, generateRsaSigningKey, signIdToken, withOverrides, type SigningKey } from './token-factory.js';

export const DEV_ISSUER_PATH = '/dev/gitlab';

export interface DevIssuer {
  readonly router: Router;
  readonly key: SigningKey;
  /** Set once the server listens. */
  configure(baseUrl: string, audience: string): void;
  mint(overrides: Record<string, unknown>): Promise<string>;
}

export async function createDevIssuer(): Promise<DevIssuer> {
  const key = await generateRsaSigningKey('dev-key-1');
  let issuer = '';
  let audience = '';
  const router = express.Router();
  const mint = (overrides: Record<string, unknown>) =>
    signIdToken(key, withOverrides(defaultIdTokenClaims({ issuer, audience, lifetimeSeconds: 3600 }), overrides));

  router.get(`${DEV_ISSUER_PATH}/.well-known/openid-configuration`, (_req, res) => {
    res.json({ issuer, jwks_uri: `${issuer}/oauth/discovery/keys`, response_types_supported: ['id_token'], subject_types_supported: ['public'], id_token_signing_alg_values_supported: ['RS256'] });
  });
  router.get(`${DEV_ISSUER_PATH}/oauth/discovery/keys`, (_req, res) => {
    res.json({ keys: [key.publicJwk] });
  });
  router.get(`${DEV_ISSUER_PATH}/api/v4/projects/:id/jobs/:jobId`, (req, res) => {
    // The id goes back digit for digit, as GitLab's JSON number: Number() would round ids past 2^53.
    const { jobId } = req.params;
    if (!/^\d{1,20}$/.test(jobId)) return void res.status(404).json({ message: '404 Not found' });
    res.type('application/json').send(`{"id":${jobId},"status":"running","name":"dev-job","stage":"deploy"}`);
  });
  router.post(`${DEV_ISSUER_PATH}/token`, express.json({ limit: '16kb' }), async (req, res) => {
    const body = (req.body ?? {}) as { claims?: Record<string, unknown> };
    const claims = body.claims && typeof body.claims === 'object' ? body.claims : {};
    res.json({ token: await mint(claims) });
  });

  return {
    router,
    key,
    configure(baseUrl, brokerAudience) {
      issuer = `${baseUrl}${DEV_ISSUER_PATH}`;
      audience = brokerAudience;
    },
    mint,
  };
}
