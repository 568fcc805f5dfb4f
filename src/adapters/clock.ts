/** The system clock: the one place the broker reads the time (tests pass their own Clock). */
import type { Clock } from '../ports.js';

export const systemClock: Clock = { now: () => new Date() };
