/** Worker thread body for tokens.ts: mint the tokens described by workerData and post them back. */
import { parentPort, workerData } from 'node:worker_threads';
import { mintTokens, type MintJob } from './tokens.js';

parentPort?.postMessage(mintTokens(workerData as MintJob));
