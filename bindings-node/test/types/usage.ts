// Compiled with `tsc --noEmit` by the test command: the declarations in
// index.d.ts must describe how the package is meant to be used.
import { Backoff, codes, type BreakwaterError, type Jitter } from '../../index.js';

const jitter: Jitter = 'decorrelated';
const backoff = new Backoff({ baseMs: 50, maxMs: 2_000, factor: 2, jitter, seed: 1 });
const first: number | null = backoff.nextDelayMs();
const all: number[] = [...new Backoff({ maxAttempts: 4 })];
backoff.reset();

function isBreakwaterError(err: unknown): err is BreakwaterError {
  return err instanceof Error && typeof (err as BreakwaterError).code === 'string';
}
try {
  new Backoff({ factor: 0 });
} catch (err) {
  if (isBreakwaterError(err) && err.code === codes.INVALID_ARG) {
    void first;
    void all;
  }
}
