/**
 * How long a Google access token may live: never longer than the rule allows, than the ID token that asked for it, or
 * than the hour IAM Credentials grants by default (longer lifetimes need an organisation policy the broker does not
 * assume). Pure: `now` is an argument.
 */

/** IAM Credentials' default maximum for `generateAccessToken` lifetimes, in seconds. */
export const GOOGLE_MAX_LIFETIME_SECONDS = 3600;

export interface GoogleLifetime {
  /** Whole seconds to ask IAM Credentials for; 0 when the ID token has already expired. */
  readonly seconds: number;
  /** When the token will expire: `now` (whole seconds) plus `seconds`. */
  readonly expiresAt: Date;
}

/**
 * min(rule lifetime, ID token exp − now, 1 h), in whole seconds.
 * @example googleLifetime({ ruleSeconds: 900, tokenExp: nowSeconds + 300, now }) // → { seconds: 300, … }
 */
export function googleLifetime(input: { readonly ruleSeconds: number; readonly tokenExp: number; readonly now: Date }): GoogleLifetime {
  const nowSeconds = Math.floor(input.now.getTime() / 1000);
  const seconds = Math.max(0, Math.floor(Math.min(input.ruleSeconds, input.tokenExp - nowSeconds, GOOGLE_MAX_LIFETIME_SECONDS)));
  return { seconds, expiresAt: new Date((nowSeconds + seconds) * 1000) };
}
