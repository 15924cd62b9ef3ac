/**
 * The messages between scripts/bench-relay.ts (host) and scripts/bench/guest-client.ts (in the qemu guest): a
 * tiny JSON-over-HTTP control channel on the host's 127.0.0.1 (the guest reaches it as 10.0.2.2), kept apart
 * from the delayed data path. The guest asks for its plan, asks the host to set each added RTT before measuring
 * it, and posts each point's samples as soon as it has them.
 */
import type { CeremonyTiming } from './ceremony.ts';

export const LINES = ['direct', 'keytunnel', 'usbip'] as const;
export type LineName = (typeof LINES)[number];

export interface LinePlan {
  /** Added RTTs to measure ceremonies at, in order. */
  readonly rtts: readonly number[];
  /** Ceremonies per RTT that are recorded (after the warm-up ones). */
  readonly reps: number;
  readonly warmup: number;
  /** CTAPHID_PING sizes and RTTs (the measured-USB/IP-facts reproduction). */
  readonly ping: { readonly sizes: readonly number[]; readonly rtts: readonly number[]; readonly reps: number };
}

export interface PointRequest {
  readonly line: LineName;
  readonly rttMs: number;
}

export interface CeremonyResult {
  readonly kind: 'ceremony';
  readonly line: LineName;
  readonly rttMs: number;
  readonly samples: readonly CeremonyTiming[];
  readonly errors: readonly string[];
}

export interface PingResult {
  readonly kind: 'ping';
  readonly line: LineName;
  readonly rttMs: number;
  readonly size: number;
  readonly samplesMs: readonly number[];
  readonly errors: readonly string[];
}

export type PointResult = CeremonyResult | PingResult;

export function isLineName(v: unknown): v is LineName {
  return typeof v === 'string' && (LINES as readonly string[]).includes(v);
}
