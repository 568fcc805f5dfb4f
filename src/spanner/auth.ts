/**
 * Credentials for the Spanner client: the access token file the broker exchange wrote, re-read whenever it changes
 * (so `exchange --refresh` in a side job keeps an hour-long migration supplied), or nothing at all for the emulator.
 * Never a key file of the target service account.
 */
import { readFileSync, statSync } from 'node:fs';
import { AuthClient } from 'google-auth-library';
import { BrokerError } from '../core/errors.js';

/** Reads the token file on each request when its size or mtime changed; throws a coded error when it is empty. */
export class TokenFileAuthClient extends AuthClient {
  readonly file: string;
  private token = '';
  private stamp = '';

  constructor(file: string) {
    super();
    this.file = file;
  }

  /** The current token, read again when the file changed since the last read. */
  currentToken(): string {
    let stamp: string;
    try {
      const stats = statSync(this.file);
      stamp = `${stats.mtimeMs}:${stats.size}:${stats.ino}`;
    } catch (err) {
      throw new BrokerError('token_expired', `the access token file ${this.file} cannot be read: run the broker exchange first`, { cause: err });
    }
    if (stamp !== this.stamp) {
      this.token = readFileSync(this.file, 'utf8').trim();
      this.stamp = stamp;
    }
    if (!this.token) throw new BrokerError('token_expired', `the access token file ${this.file} is empty: run the broker exchange first`);
    return this.token;
  }

  override async getAccessToken(): Promise<{ token: string }> {
    return { token: this.currentToken() };
  }

  override async getRequestHeaders(): Promise<Headers> {
    return new Headers({ authorization: `Bearer ${this.currentToken()}` });
  }

  override request(): never {
    // The Spanner client only asks for headers; a plain HTTP request through this client would be our own mistake.
    throw new TypeError('TokenFileAuthClient only supplies request headers');
  }
}

/** The emulator takes no credentials; this keeps the client from probing the GCE metadata server for some. */
export class EmulatorAuthClient extends AuthClient {
  override async getAccessToken(): Promise<{ token: string }> {
    return { token: '' };
  }

  override async getRequestHeaders(): Promise<Headers> {
    return new Headers();
  }

  override request(): never {
    throw new TypeError('EmulatorAuthClient only supplies request headers');
  }
}
