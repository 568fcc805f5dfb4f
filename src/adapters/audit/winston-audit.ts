/**
 * The audit log: winston JSON lines to a file (or stdout), with a promise per record that settles only when the
 * line was handed to the OS. A record that cannot be written rejects, and the use case then returns nothing (503).
 */
import { open, type FileHandle } from 'node:fs/promises';
import winston from 'winston';
import Transport from 'winston-transport';
import { BrokerError } from '../../core/errors.js';
import type { AuditRecord, AuditSink } from '../../ports.js';

const MESSAGE = Symbol.for('message');
const ACK = Symbol('audit-ack');

interface Ack {
  resolve(): void;
  reject(err: unknown): void;
}

type LineWriter = (line: string) => Promise<void>;

class AcknowledgingTransport extends Transport {
  constructor(private readonly writeLine: LineWriter) {
    super();
  }

  override log(info: Record<string | symbol, unknown>, next: () => void): void {
    const ack = info[ACK] as Ack | undefined;
    this.writeLine(`${String(info[MESSAGE])}\n`).then(
      () => ack?.resolve(),
      (err: unknown) => ack?.reject(err),
    );
    next();
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

/** Audit to `file` (JSON lines, appended) or to stdout when no file is given. */
export async function createAuditSink(file: string | undefined): Promise<FileAuditSink> {
  let handle: FileHandle | undefined = file === undefined ? undefined : await open(file, 'a', 0o600);
  let healthy = true;
  const writeLine: LineWriter =
    file === undefined
      ? stdoutWriter()
      : async (line) => {
          if (!handle) throw new Error('audit file is closed');
          await handle.write(line);
        };
  const logger = winston.createLogger({
    level: 'info',
    format: winston.format.combine(winston.format.timestamp(), winston.format.json()),
    transports: [new AcknowledgingTransport(writeLine)],
    exitOnError: false,
  });

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
        logger.log({ level: 'info', message: 'audit', ...record, [ACK]: ack } as winston.LogEntry);
      });
    },
    async ready(): Promise<boolean> {
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
      handle = await open(file, 'a', 0o600);
      await previous?.close();
    },
    async close(): Promise<void> {
      logger.close();
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
