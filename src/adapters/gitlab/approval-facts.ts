/**
 * Placeholder until the approvals adapter lands: fails closed, so a rule that requires approvals never passes.
 */
import { BrokerError } from '../../core/errors.js';
import type { FactSource, TrustedIssuer } from '../../ports.js';

export function createApprovalFactSource(_options: { token: (issuer: TrustedIssuer) => Promise<string>; timeoutMs: number }): Pick<FactSource, 'approvals'> {
  return {
    async approvals() {
      throw new BrokerError('upstream_unavailable', 'approval lookups are not available');
    },
  };
}
