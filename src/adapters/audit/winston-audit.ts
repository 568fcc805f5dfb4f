/**
 * The audit log: winston JSON lines to a file (or stdout), with a promise per record that settles only when the
 * line was handed to the OS. A record that cannot be written rejects, and the use case then returns nothing (503).
 *
 * Group commit: lines that winston formats while a write is in flight wait for it and then go out together in one
 * write (one syscall, one thread-pool job) instead of one each; each record's promise still settles only after the
 * write holding its bytes returned. One write at a time also keeps the lines in the order they were logged.
 */
import { Buffer } from 'node:buffer';
import { open, type FileHandle } from 'node:fs/promises';
import winston from 'winston';
import Transport from 'winston-transport';
import { BrokerError } from '../../core/errors.js';
import type { AuditRecord, AuditSink, Clock } from '../../ports.js';
import { systemClock } from '../clock.js';

const MESSAGE = Symbol.for('message');
const ACK = Symbol('audit-ack');
const LINE = Symbol('audit-line');
const AUDIT_WRITE_TIMEOUT_MS = 5000;

/** A winston format that emits the line the sink already serialised. */
const prebuiltLine = winston.format((info) => {
  const carrier = info as unknown as Record<symbol, unknown>;
  carrier[MESSAGE] = carrier[LINE];
  return info;
});

interface Ack {
  resolve(): void;
  reject(err: unknown): void;
}

type LineWriter = (line: string) => Promise<void>;

/** The most bytes one write carries; a larger backlog goes out in several writes, in order. */
const MAX_BATCH_BYTES = 1024 * 1024;

class AcknowledgingTransport extends Transport {
  private queue: string[] = [];
  private acks: Array<Ack | undefined> = [];
  private queuedBytes = 0;
  private writing = false;
  private idle: Array<() => void> = [];
  /** Set while a write that outlived the timeout is still pending: records fail at once instead of queueing behind it. */
  private stalled: Error | undefined;

  constructor(
    private readonly writeLine: LineWriter,
    private readonly timeoutMs: number,
  ) {
    super();
  }

  override log(info: Record<string | symbol, unknown>, next: () => void): void {
    if (this.stalled) {
      (info[ACK] as Ack | undefined)?.reject(this.stalled);
      next();
      return;
    }
    const line = `${String(info[MESSAGE])}\n`;
    this.queue.push(line);
    this.acks.push(info[ACK] as Ack | undefined);
    this.queuedBytes += line.length;
    // Wait for the end of this tick so records logged together share a write; later ones queue behind the write.
    if (!this.writing && this.queue.length === 1) setImmediate(() => void this.flush());
    next();
  }

  /**
   * One timer per write, not per record: a disk that hangs must not hang exchanges, so past the deadline the batch and
   * everything queued behind it count as not written (503), and new records fail at once until the write returns.
   */
  private writeWithin(text: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        this.stalled = new Error(`audit write took longer than ${this.timeoutMs} ms`);
        for (const ack of this.acks.splice(0)) ack?.reject(this.stalled);
        this.queue = [];
        this.queuedBytes = 0;
        reject(this.stalled);
      }, this.timeoutMs);
      this.writeLine(text).then(
        () => {
          clearTimeout(timer);
          this.stalled = undefined;
          if (!timedOut) resolve();
        },
        (err: unknown) => {
          clearTimeout(timer);
          this.stalled = undefined;
          if (!timedOut) reject(err);
        },
      );
    });
  }

  /** True while a write that outlived the timeout is still pending. */
  get isStalled(): boolean {
    return this.stalled !== undefined;
  }

  /** Resolves once every line logged so far was written (or failed). */
  drained(): Promise<void> {
    if (!this.writing && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  private async flush(): Promise<void> {
    if (this.writing) return;
    this.writing = true;
    while (this.queue.length > 0) {
      let count = this.queue.length;
      if (this.queuedBytes > MAX_BATCH_BYTES) {
        let bytes = 0;
        count = 0;
        while (count < this.queue.length && (count === 0 || bytes + (this.queue[count] as string).length <= MAX_BATCH_BYTES)) bytes += (this.queue[count++] as string).length;
      }
      const lines = this.queue.splice(0, count);
      const acks = this.acks.splice(0, count);
      const text = lines.length === 1 ? (lines[0] as string) : lines.join('');
      this.queuedBytes -= text.length;
      try {
        await this.writeWithin(text);
        for (const ack of acks) ack?.resolve();
      } catch (err) {
        for (const ack of acks) ack?.reject(err);
      }
    }
    this.writing = false;
    for (const resolve of this.idle.splice(0)) resolve();
  }
}

/**
 * The JSON line of one record: winston's fields first, then the record's. Built by splicing the record's own JSON
 * rather than spreading it into a fresh object (two records of ~25 fields per exchange).
 */
function auditLine(record: AuditRecord, timestamp: string): string {
  if (Object.hasOwn(record, 'timestamp') || Object.hasOwn(record, 'level') || Object.hasOwn(record, 'message')) {
    return JSON.stringify({ timestamp, level: 'info', message: 'audit', ...record });
  }
  const prefix = `{"timestamp":"${timestamp}","level":"info","message":"audit"`;
  const json = JSON.stringify(record);
  return json === '{}' ? `${prefix}}` : `${prefix},${json.slice(1)}`;
}

/** Writes all of `text`, however the OS splits it. '' is the readiness probe: one empty write, as before. */
async function writeFully(handle: FileHandle, text: string): Promise<void> {
  if (text === '') {
    await handle.write('');
    return;
  }
  const bytes = Buffer.from(text, 'utf8');
  let offset = 0;
  while (offset < bytes.length) {
    const { bytesWritten } = await handle.write(bytes, offset, bytes.length - offset);
    offset += bytesWritten;
  }
}

function stdoutWriter(): LineWriter {
  return (line) =>
    new Promise<void>((resolve, reject) => {
      process.stdout.write(line, (err) => (err ? reject(err) : resolve()));
    });
}

export interface FileAuditSink extends AuditSink {
  /** Reopen the file (after log rotation). */
  reopen(): Promise<void>;
  close(): Promise<void>;
}

export interface AuditSinkOptions {
  readonly writeTimeoutMs?: number;
  /** Stamps each record's `timestamp` (default the system clock). */
  readonly clock?: Clock;
}

/** Audit to `file` (JSON lines, appended) or to stdout when no file is given. */
export async function createAuditSink(file: string | undefined, options: AuditSinkOptions = {}): Promise<FileAuditSink> {
  const clock = options.clock ?? systemClock;
  let handle: FileHandle | undefined = file === undefined ? undefined : await open(file, 'a', 0o600);
  let healthy = true;
  let closed = false;
  let opening: Promise<FileHandle> | undefined;
  /** The open file; after a reopen that failed, each write tries the path again, so the sink recovers by itself. */
  async function openHandle(path: string): Promise<FileHandle> {
    if (closed) throw new Error('audit file is closed');
    if (handle) return handle;
    opening ??= open(path, 'a', 0o600).finally(() => (opening = undefined));
    handle = await opening;
    return handle;
  }
  const writeLine: LineWriter = file === undefined ? stdoutWriter() : async (text) => writeFully(await openHandle(file), text);
  const transport = new AcknowledgingTransport(writeLine, options.writeTimeoutMs ?? AUDIT_WRITE_TIMEOUT_MS);
  const logger = winston.createLogger({ level: 'info', format: prebuiltLine(), transports: [transport], exitOnError: false });

  return {
    write(record: AuditRecord): Promise<void> {
      return new Promise<void>((resolve, reject) => {
        const ack: Ack = {
          resolve: () => {
            healthy = true;
            resolve();
          },
          reject: (err) => {
            healthy = false;
            reject(new BrokerError('audit_unavailable', 'the audit record could not be written', { cause: err }));
          },
        };
        // Serialised once here with JSON.stringify: records are plain data we built (no cycles, no BigInt), and
        // winston's json format (safe-stable-stringify, key sorting) was the largest allocator on the exchange path.
        logger.log({ level: 'info', message: 'audit', [LINE]: auditLine(record, clock.now().toISOString()), [ACK]: ack } as winston.LogEntry);
      });
    },
    async ready(): Promise<boolean> {
      if (transport.isStalled) return false; // no probe write: it would queue behind the stuck one
      if (!healthy) {
        try {
          await writeLine('');
          healthy = true;
        } catch {
          return false;
        }
      }
      return true;
    },
    async reopen(): Promise<void> {
      if (file === undefined) return;
      const previous = handle;
      handle = undefined;
      try {
        await openHandle(file);
      } catch (err) {
        // Records must not go on into the rotated file, which the rotator may compress or delete: fail until the
        // configured path can be opened again.
        healthy = false;
        throw err;
      } finally {
        await previous?.close();
      }
    },
    async close(): Promise<void> {
      // Records still queued are written first (bounded, so a stuck disk cannot hold shutdown forever).
      await Promise.race([transport.drained(), new Promise((resolve) => setTimeout(resolve, 5000).unref())]);
      logger.close();
      closed = true;
      await handle?.close();
      handle = undefined;
    },
  };
}

/** Operational log (not the audit trail): JSON lines on stderr. */
export function createOperationalLogger(level = process.env.LOG_LEVEL ?? 'info'): winston.Logger {
  return winston.createLogger({
    level,
    format: winston.format.combine(winston.format.timestamp(), winston.format.json()),
    transports: [new winston.transports.Console({ stderrLevels: ['error', 'warn', 'info', 'debug'] })],
  });
}
