/**
 * The deadline of one request's GitLab calls. A `RequestDeadline` fires once: when its time is up or when `abort` is
 * called (the first failed call, so its siblings stop). It is the `RequestSignal` the GitLab adapters listen to, in
 * place of an AbortController, whose signal costs ~2 µs to create and ~0.2 µs per listener on Node 20, plus the
 * garbage of an EventTarget, on every exchange; this costs ~0.4 µs with its timer (docs/performance.md).
 */
import type { RequestSignal } from '../ports.js';

export class RequestDeadline implements RequestSignal {
  #aborted = false;
  #listeners: (() => void)[] = [];
  readonly #timer: NodeJS.Timeout;

  /** @example const deadline = new RequestDeadline(5000); try { … } finally { deadline.end(); } */
  constructor(ms: number) {
    this.#timer = setTimeout(() => this.abort(), ms);
  }

  get aborted(): boolean {
    return this.#aborted;
  }

  addEventListener(_type: 'abort', listener: () => void): void {
    if (!this.#aborted) this.#listeners.push(listener);
  }

  removeEventListener(_type: 'abort', listener: () => void): void {
    const at = this.#listeners.indexOf(listener);
    if (at >= 0) this.#listeners.splice(at, 1);
  }

  /** Fire now (no-op once fired): every listener is called once, in the order they were added. */
  abort(): void {
    if (this.#aborted) return;
    this.#aborted = true;
    clearTimeout(this.#timer);
    const listeners = this.#listeners;
    this.#listeners = [];
    for (const listener of listeners) listener();
  }

  /** The request is over: the timer goes, and the deadline never fires. */
  end(): void {
    clearTimeout(this.#timer);
    this.#listeners = [];
  }
}
