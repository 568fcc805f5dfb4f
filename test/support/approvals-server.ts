/**
 * Starts the approval endpoints alone on 127.0.0.1 (port 0) behind /api/v4, with the 501 catch-all the full stand-in
 * GitLab has, for adapter tests and the benchmark. End-to-end tests use the lead's stand-in instead.
 */
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import express from 'express';
import type { TrustedIssuer } from '../../src/ports.js';
import { mountApprovalsApi, type ApprovalsApiData, type ApprovalsApiHandle } from './gitlab-approvals-api.js';

export interface ApprovalsServer {
  readonly api: ApprovalsApiHandle;
  readonly issuer: TrustedIssuer;
  close(): Promise<void>;
}

export async function startApprovalsServer(data: ApprovalsApiData): Promise<ApprovalsServer> {
  const app = express();
  const router = express.Router();
  const api = mountApprovalsApi(router, data);
  app.use('/api/v4', router);
  app.use((_req, res) => {
    res.status(501).json({ message: '501 Not Implemented by the stand-in' });
  });
  const server = app.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  const base = `http://127.0.0.1:${port}`;
  return {
    api,
    issuer: { issuer: base, audience: 'https://broker.example.com', apiUrl: `${base}/api/v4`, maxTokenAgeSeconds: 7200 },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
