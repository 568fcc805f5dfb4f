/**
 * The latency control for the half-load phase: a plain node:http server that spends a fixed CPU time per request
 * (a busy loop, no allocation to speak of, no I/O, no GC pressure) and answers 200 with a small JSON body. Run pinned
 * to the broker's core at the broker's rate with the broker's CPU per request, its p99 is what this machine and the
 * generator add by themselves: a tail the broker cannot go below on the same box.
 * Argument: microseconds of CPU per request. Prints the port on stdout once listening.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

const spinMicros = Number(process.argv[2] ?? '0');
const BODY = '{"control":true}';

const server = createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    const until = performance.now() + spinMicros / 1000;
    while (performance.now() < until) {
      // the broker's CPU per request, spent without touching the heap
    }
    res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': BODY.length }).end(BODY);
  });
});
server.keepAliveTimeout = 30_000;
server.listen(0, '127.0.0.1', () => console.log((server.address() as AddressInfo).port));
process.on('disconnect', () => process.exit(0));
