/**
 * Connection accounting for a tunnel listener, so that nobody who can merely reach the port can lock trusted peers
 * out, and no trusted peer can hold an unbounded number of tunnels.
 *
 * Two pools, each bounded by eviction of its OLDEST member rather than refusal of the newcomer:
 *
 *   - unauthenticated: accepted TCP connections whose TLS handshake has not yet produced a trusted certificate
 *     (idle sockets, slow or stalled handshakes). At most `maxUnauthenticated`; a new connection beyond that evicts
 *     the oldest one — the policy of sshd's MaxStartups, minus the random early drop: an attacker holding the pool
 *     full only ever delays a real peer by the time its own handshake takes, since a newcomer always gets in and
 *     an idle socket is the first to go. The handshake timeout bounds how long any of them stays.
 *   - per peer (certificate fingerprint): connections whose certificate is trusted, from the moment the handshake
 *     verified it (so before HELLO too). At most `maxPerPeer` per fingerprint; a newer one replaces the oldest (a
 *     gateway reconnecting after a network change replaces its stale tunnel before the heartbeat notices it).
 *     The total of this pool is bounded by `maxPerPeer` × the size of the trust set.
 *
 * Pure bookkeeping: it never touches a socket itself; each slot carries the `evict` action the listener gives it.
 */

export const DEFAULT_MAX_UNAUTHENTICATED = 32;
export const DEFAULT_MAX_CONNECTIONS_PER_PEER = 3;

export interface AdmissionLimits {
  readonly maxUnauthenticated: number;
  readonly maxPerPeer: number;
}

/** One accepted connection. `evict` is how the listener drops it (replaced as the connection progresses). */
export interface Slot {
  evict: (reason: string) => void;
  /** The verified peer fingerprint, once authenticated. */
  readonly fingerprint: string | undefined;
}

interface MutableSlot extends Slot {
  fingerprint: string | undefined;
  released: boolean;
}

export class Admission {
  private readonly maxUnauthenticated: number;
  private readonly maxPerPeer: number;
  /** Insertion order is age: the first entry is the oldest. */
  private readonly unauthenticated = new Set<MutableSlot>();
  private readonly peers = new Map<string, Set<MutableSlot>>();

  constructor(limits: Partial<AdmissionLimits> = {}) {
    this.maxUnauthenticated = Math.max(1, limits.maxUnauthenticated ?? DEFAULT_MAX_UNAUTHENTICATED);
    this.maxPerPeer = Math.max(1, limits.maxPerPeer ?? DEFAULT_MAX_CONNECTIONS_PER_PEER);
  }

  /** Connections not yet authenticated. */
  get pendingCount(): number {
    return this.unauthenticated.size;
  }

  /** Authenticated connections of `fingerprint`. */
  peerCount(fingerprint: string): number {
    return this.peers.get(fingerprint)?.size ?? 0;
  }

  /**
   * A TCP connection was accepted: admit it to the unauthenticated pool, evicting the oldest members while the
   * pool is over its bound. Returns the new slot and how many were evicted.
   */
  accept(evict: (reason: string) => void): { slot: Slot; evicted: number } {
    const slot: MutableSlot = { evict, fingerprint: undefined, released: false };
    this.unauthenticated.add(slot);
    let evicted = 0;
    while (this.unauthenticated.size > this.maxUnauthenticated) {
      const oldest = this.unauthenticated.values().next().value as MutableSlot;
      this.release(oldest);
      evicted++;
      oldest.evict(`more than ${this.maxUnauthenticated} connections were waiting to authenticate; this was the oldest`);
    }
    return { slot, evicted };
  }

  /**
   * The slot's certificate was verified as `fingerprint`: move it to that peer's pool, evicting (replacing) the
   * peer's oldest connections while it holds more than its bound. Returns false when the slot was already gone.
   */
  authenticate(slot: Slot, fingerprint: string): boolean {
    const s = slot as MutableSlot;
    if (s.released || s.fingerprint !== undefined) return false;
    this.unauthenticated.delete(s);
    s.fingerprint = fingerprint;
    let pool = this.peers.get(fingerprint);
    if (pool === undefined) this.peers.set(fingerprint, (pool = new Set()));
    pool.add(s);
    while (pool.size > this.maxPerPeer) {
      const oldest = pool.values().next().value as MutableSlot;
      this.release(oldest);
      oldest.evict(`replaced by a newer connection from the same peer (at most ${this.maxPerPeer} per peer)`);
    }
    return true;
  }

  /** The connection closed (or was evicted): forget it. Idempotent. */
  release(slot: Slot): void {
    const s = slot as MutableSlot;
    if (s.released) return;
    s.released = true;
    if (s.fingerprint === undefined) {
      this.unauthenticated.delete(s);
      return;
    }
    const pool = this.peers.get(s.fingerprint);
    pool?.delete(s);
    if (pool?.size === 0) this.peers.delete(s.fingerprint);
  }
}
