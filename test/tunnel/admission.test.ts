/** tunnel/admission.ts: the listener's two pools and their oldest-first eviction. */
import { describe, expect, it } from 'vitest';
import { Admission } from '../../tunnel/admission.ts';

function tracker() {
  const evicted: string[] = [];
  return { evicted, evict: (name: string) => () => void evicted.push(name) };
}

describe('Admission', () => {
  it('a new unauthenticated connection beyond the cap evicts the oldest one, never itself', () => {
    const a = new Admission({ maxUnauthenticated: 3 });
    const t = tracker();
    const slots = ['s1', 's2', 's3'].map((n) => a.accept(t.evict(n)).slot);
    expect(t.evicted).toEqual([]);
    const { evicted } = a.accept(t.evict('s4'));
    expect(evicted).toBe(1);
    expect(t.evicted).toEqual(['s1']);
    expect(a.pendingCount).toBe(3);
    // A closed one frees its place: no eviction for the next newcomer.
    a.release(slots[1]);
    a.accept(t.evict('s5'));
    expect(t.evicted).toEqual(['s1']);
    a.accept(t.evict('s6'));
    expect(t.evicted).toEqual(['s1', 's3']);
  });

  it('authenticated connections leave the unauthenticated pool and are not evicted by a flood', () => {
    const a = new Admission({ maxUnauthenticated: 2, maxPerPeer: 2 });
    const t = tracker();
    const trusted = a.accept(t.evict('trusted')).slot;
    expect(a.authenticate(trusted, 'fp-a')).toBe(true);
    for (let i = 0; i < 100; i++) a.accept(t.evict(`idle${i}`));
    expect(t.evicted).not.toContain('trusted');
    expect(t.evicted).toHaveLength(98);
    expect(a.peerCount('fp-a')).toBe(1);
  });

  it('a peer beyond its per-peer bound has its oldest connection replaced; other peers are untouched', () => {
    const a = new Admission({ maxPerPeer: 2 });
    const t = tracker();
    const auth = (name: string, fp: string) => {
      const slot = a.accept(t.evict(name)).slot;
      a.authenticate(slot, fp);
      return slot;
    };
    auth('a1', 'A');
    auth('b1', 'B');
    const a2 = auth('a2', 'A');
    auth('a3', 'A');
    expect(t.evicted).toEqual(['a1']);
    a.release(a2);
    auth('a4', 'A');
    expect(t.evicted).toEqual(['a1']);
    auth('a5', 'A');
    expect(t.evicted).toEqual(['a1', 'a3']);
    expect(a.peerCount('A')).toBe(2);
    expect(a.peerCount('B')).toBe(1);
  });

  it('an evicted or released slot cannot be authenticated afterwards', () => {
    const a = new Admission({ maxUnauthenticated: 1 });
    const t = tracker();
    const first = a.accept(t.evict('first')).slot;
    a.accept(t.evict('second'));
    expect(t.evicted).toEqual(['first']);
    expect(a.authenticate(first, 'A')).toBe(false);
    expect(a.peerCount('A')).toBe(0);
  });
});
