/**
 * The one builder of verified GitLab principals for tests that need no signed token: the dev token factory's claims
 * (job 302 of project 20, payments/api, refs/heads/main, production) with overrides; a null override removes a claim.
 */
import { parsePrincipal, type GitLabPrincipal } from '../../src/core/claims.js';
import { defaultIdTokenClaims, withOverrides } from '../../src/dev/token-factory.js';

export const PRINCIPAL_ISSUER = 'https://gitlab.example.com';
export const PRINCIPAL_AUDIENCE = 'https://broker.example.com';

export function principalOf(overrides: Record<string, unknown> = {}, now?: Date): GitLabPrincipal {
  const nowSeconds = now === undefined ? undefined : Math.floor(now.getTime() / 1000);
  const claims = defaultIdTokenClaims({ issuer: PRINCIPAL_ISSUER, audience: PRINCIPAL_AUDIENCE, ...(nowSeconds === undefined ? {} : { nowSeconds }) });
  return parsePrincipal(withOverrides(claims, overrides), PRINCIPAL_AUDIENCE);
}
