/**
 * What one grant kind is, as pure data and functions: its policy section, its request section, the check a rule's
 * section makes of a request, the mint plan, when two rules grant the same credential, what the audit log keeps of a
 * minted credential, what the broker answers and what the CLI writes to files. One module per kind (google.ts,
 * linkerd.ts, token.ts); the registry in ../grants.ts lists them.
 */
import { z } from 'zod';
import { parseDuration } from '../duration.js';

/** One requested kind's verdict under one rule; `detail` is the explain text. */
export interface KindCheck {
  readonly ok: boolean;
  readonly detail: string;
}

/** When a credential expires: already clamped to the rule's lifetime, the kind's hard cap and the ID token's exp. */
export interface Expiry {
  readonly seconds: number;
  readonly at: Date;
}

/** What a refresh session remembers of one granted kind (the `grants.<kind>` claim of the session token). */
export type SessionScope = Readonly<Record<string, unknown>>;

/** A file the CLI writes for a granted credential. */
export interface CredentialFile {
  /** Inside the output directory the CLI passed to `output`. */
  readonly path: string;
  readonly content: string;
  /** 0o600 for secrets. */
  readonly mode: number;
}

export interface CredentialOutput {
  readonly files: readonly CredentialFile[];
  /** dotenv entries, in the order they are written. */
  readonly env: readonly (readonly [name: string, value: string])[];
}

/** An ISO 8601 time as JSON carries it (the `expiresAt` of every credential in a broker answer). */
export const isoTimeSchema = z.string().refine((text) => !Number.isNaN(Date.parse(text)), 'must be an ISO 8601 time');

/** What the job adds to a request that the broker cannot make for it (the linkerd CSR: its key stays in the job). */
export interface JobMaterial {
  readonly csrPem?: string;
  readonly privateKeyPem?: string;
}

export interface GrantModule<K extends string, Spec extends { readonly lifetime: number }, Request, Plan extends { readonly kind: K }, Minted> {
  readonly kind: K;
  /** A few words for tables and docs: "Google access token". */
  readonly title: string;
  /** One paragraph for the generated docs. */
  readonly description: string;
  /** The broker config section whose adapter mints this kind; named when a policy grants a kind it cannot mint. */
  readonly configSection: string;
  /** Whether minting calls an outside system: the mint then runs under the request's deadline (`limits.factTimeout`). */
  readonly mintsUpstream: boolean;
  /** Whatever a rule says, no credential of this kind lives longer. */
  readonly hardCapSeconds: number;
  /** The rule's `grant.<kind>` section (strict). */
  readonly policySchema: z.ZodType<Spec, unknown>;
  /** The request body's `grants.<kind>` section (strict). */
  readonly requestSchema: z.ZodType<Request, unknown>;
  /** Whether a rule's section (undefined: the rule grants no credential of this kind) allows the request. */
  check(allowed: Spec | undefined, request: Request): KindCheck;
  /** What to mint; called only after `check` said ok. */
  plan(allowed: Spec, request: Request, expiry: Expiry): Plan;
  /** What a refresh session keeps of a minted plan: the most a refresh may ask for (JSON-safe, no secret). */
  sessionScope(plan: Plan): SessionScope;
  /** A refresh's request under a session's scope: the request to mint (defaults taken from the scope), or why it asks for more. */
  withinSession(scope: SessionScope, request: Request): { readonly request: Request } | { readonly refused: string };
  /**
   * What two rules' sections of this kind both grant, for the policy linter's shadowing check (an earlier rule granting
   * it with weaker requirements lets a pipeline around the later rule's), as a phrase for its message that starts with
   * the kind (`token audience a, b`); undefined when no request could get the same credential from both. When unsure,
   * say they overlap: a false alarm costs `--allow-shadowing`, a missed one an approval bypass.
   */
  overlaps(earlier: Spec, later: Spec): string | undefined;
  /** What the audit log keeps of a minted credential: never the credential, only its hash and metadata. */
  auditSummary(minted: Minted, sha256Hex: (text: string) => string): Readonly<Record<string, unknown>>;
  /** The CLI's side: the flag argument it takes (`token=AUDIENCE`), the request it sends, the files it writes. */
  readonly cli: {
    /** Name of the optional `--grant kind=VALUE` argument, or undefined when the kind takes none. */
    readonly argument?: string;
    /** Whether the job makes a key pair and sends only its CSR. */
    readonly needsKeyPair?: boolean;
    request(argument: string | undefined, material: JobMaterial): unknown;
    /**
     * The response's `grants.<kind>` as the server sends it and the CLI reads it (JSON: dates are strings): every field
     * the minted credential serializes to, so that a field on one side alone fails the contract test; the exchange
     * response schema (../exchange-response.ts) is built from these. `expiresAt` is when `exchange --refresh` renews.
     */
    readonly responseSchema: z.ZodType<{ readonly expiresAt: string } & Readonly<Record<string, unknown>>, unknown>;
    output(granted: Readonly<Record<string, unknown>>, material: JobMaterial, dir: string): CredentialOutput;
  };
}

/** A rule's lifetime: a duration string (default `fallback`) of at most `maxSeconds`, read as seconds. */
export function lifetimeSchema(maxSeconds: number, fallback: string) {
  return z
    .string()
    .default(fallback)
    .refine((text) => {
      const seconds = parseDuration(text);
      return seconds !== undefined && seconds <= maxSeconds;
    }, `must be a duration like 15m, at most ${maxSeconds / 60} minutes`)
    .transform((text) => parseDuration(text) as number);
}
