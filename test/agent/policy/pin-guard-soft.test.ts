/**
 * Issue 11 finding 3, end to end on the agent side: a real SoftAuthenticator behind withPolicy views for two
 * gateways sharing one PolicyState and one PinGuard (as agent/policy/view.ts builds them), driven by an
 * independent platform-side PIN protocol client (test/agent/soft/helpers.ts).
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { CborMap } from '../../../protocol/cbor.ts';
import {
  CTAP2_ERR_OPERATION_DENIED,
  CTAP2_ERR_PIN_AUTH_BLOCKED,
  CTAP2_ERR_PIN_INVALID,
} from '../../../protocol/ctap2.ts';
import { PERMISSION_GA, PERMISSION_MC } from '../../../protocol/client-pin.ts';
import type { AuditRecord } from '../../../agent/policy/audit.ts';
import { defaultPolicy } from '../../../agent/policy/config.ts';
import { FilePinBlockStore, PIN_BLOCK_REASON, PinGuard } from '../../../agent/policy/pin-guard.ts';
import { PolicyState, withPolicy } from '../../../agent/policy/policy-authenticator.ts';
import type { Presence } from '../../../agent/presence/port.ts';
import { AlwaysPresence } from '../../../agent/presence/always.ts';
import type { SoftAuthenticator } from '../../../agent/authenticators/soft/soft-authenticator.ts';
import { ctap, m, makeHarness, PlatformPin, type Harness } from '../soft/helpers.ts';

const FP_A = 'aa'.repeat(32).match(/../g)!.join(':');
const FP_B = 'bb'.repeat(32).match(/../g)!.join(':');
const PIN = '271828';

async function retries(h: Harness): Promise<number> {
  const r = await ctap(h, 0x06, m([[2, 1]]));
  expect(r.status).toBe(0);
  return (r.body as CborMap).get(3) as number;
}

async function clientPinSet(h: Harness): Promise<boolean> {
  const info = await ctap(h, 0x04);
  return ((info.body as CborMap).get(4) as CborMap).get('clientPin') as boolean;
}

/** The soft authenticator (local face: `h`) and one gateway view per fingerprint, as the agent wires them. */
async function agentWith(presence?: Presence) {
  const h = await makeHarness(presence ? { presence } : {});
  const stateDir = await mkdtemp(join(tmpdir(), 'kt-pin-soft-'));
  const guard = await PinGuard.open(stateDir, presence ?? h.presence);
  const audit: AuditRecord[] = [];
  const state = new PolicyState();
  const view = (fp: string, name: string): Harness => {
    const deps = { audit: { record: (r: AuditRecord) => audit.push(r) }, presence: presence ?? h.presence, state, pinGuard: guard };
    const auth = withPolicy(h.auth, { ...defaultPolicy(fp), name }, deps);
    return { ...h, auth: auth as unknown as SoftAuthenticator };
  };
  return { h, guard, audit, stateDir, view };
}

for (const protocol of [1, 2] as const) {
  describe(`PIN guard on the soft authenticator, PIN/UV auth protocol ${protocol}`, () => {
    it("B's 10 wrong PINs: PIN_INVALID twice then PIN_AUTH_BLOCKED, the key loses at most 2 retries, A's PIN still works", async () => {
      const { h, audit, view } = await agentWith();
      expect(await new PlatformPin(h, protocol).setPin(PIN)).toBe(0); // set locally on the agent
      const a = new PlatformPin(view(FP_A, 'customer-a'), protocol);
      const b = new PlatformPin(view(FP_B, 'customer-b'), protocol);

      const answers: number[] = [];
      for (let i = 0; i < 10; i++) {
        const wrong = i % 2 === 0 ? await b.token('000000') : await b.token('000000', PERMISSION_GA, 'b.example');
        answers.push(wrong.status);
      }
      expect(answers).toEqual([CTAP2_ERR_PIN_INVALID, CTAP2_ERR_PIN_INVALID, ...Array(8).fill(CTAP2_ERR_PIN_AUTH_BLOCKED)]);
      expect(await retries(h)).toBe(6);
      // B's correct PIN is refused too (nothing forwarded: the retries stay), and so is a changePIN.
      expect((await b.token(PIN)).status).toBe(CTAP2_ERR_PIN_AUTH_BLOCKED);
      expect(await b.changePin(PIN, '314159')).toBe(CTAP2_ERR_PIN_AUTH_BLOCKED);
      expect(await retries(h)).toBe(6);
      expect(h.presence.requests).toEqual([]); // a blocked gateway's changePIN is not put to the user

      const tokenA = await a.token(PIN, PERMISSION_MC | PERMISSION_GA, 'a.example');
      expect(tokenA.status).toBe(0);
      expect(tokenA.token).toHaveLength(32);
      expect(await retries(h)).toBe(8);

      // A reconnect of B (a new view, same guard) is still blocked; B's retry counter query still works.
      const b2 = new PlatformPin(view(FP_B, 'customer-b'), protocol);
      expect((await b2.token(PIN)).status).toBe(CTAP2_ERR_PIN_AUTH_BLOCKED);
      const refused = audit.filter((r) => r.gateway === FP_B && r.decision === 'refused-by-policy');
      expect(refused.length).toBe(8 + 3);
      expect(refused.every((r) => r.reason === PIN_BLOCK_REASON && r.status === '0x34' && r.command === 'clientPin')).toBe(true);
    });

    it('setPIN from a VM: refused when the user on the agent says no, set when they say yes', async () => {
      const { h, view } = await agentWith();
      const b = new PlatformPin(view(FP_B, 'customer-b'), protocol);
      h.presence.answer = 'denied';
      expect(await b.setPin(PIN)).toBe(CTAP2_ERR_OPERATION_DENIED);
      expect(await clientPinSet(h)).toBe(false);
      expect(h.presence.requests.map((r) => [r.action, r.origin?.gatewayName, r.origin?.gatewayFingerprint])).toEqual([
        ['setPin', 'customer-b', FP_B],
      ]);

      h.presence.answer = 'approved';
      expect(await b.setPin(PIN)).toBe(0);
      expect(await clientPinSet(h)).toBe(true);
      expect((await new PlatformPin(h, protocol).token(PIN)).status).toBe(0);

      // changePIN likewise: a no keeps the old PIN.
      h.presence.answer = 'denied';
      expect(await b.changePin(PIN, '314159')).toBe(CTAP2_ERR_OPERATION_DENIED);
      expect(h.presence.requests.at(-1)).toMatchObject({ action: 'changePin', origin: { gatewayName: 'customer-b' } });
      expect((await new PlatformPin(h, protocol).token(PIN)).status).toBe(0);
      h.presence.answer = 'approved';
      expect(await b.changePin(PIN, '314159')).toBe(0);
      expect((await new PlatformPin(h, protocol).token('314159')).status).toBe(0);
    });
  });
}

describe('PIN guard and auto-approve', () => {
  it('--approve always neither unblocks a gateway nor lets its PIN through; `trust unblock` (the file removed) does', async () => {
    const { h, guard, stateDir, view } = await agentWith(new AlwaysPresence());
    expect(await new PlatformPin(h, 2).setPin(PIN)).toBe(0);
    const b = new PlatformPin(view(FP_B, 'customer-b'), 2);
    await b.token('000000');
    await b.token('000000');
    expect((await b.token(PIN)).status).toBe(CTAP2_ERR_PIN_AUTH_BLOCKED);
    expect(await b.changePin(PIN, '314159')).toBe(CTAP2_ERR_PIN_AUTH_BLOCKED);
    expect(await b.setPin(PIN)).toBe(CTAP2_ERR_PIN_AUTH_BLOCKED);
    expect(guard.isBlocked(FP_B)).toBe(true);

    expect(await new FilePinBlockStore(stateDir).remove(FP_B)).toBe(true);
    const unblocked = await b.token(PIN);
    expect(unblocked.status).toBe(0);
    expect(guard.isBlocked(FP_B)).toBe(false);
  });
});

describe('loadAgentPolicy wires one PinGuard into every view', () => {
  it('a reconnect (a new view of the same gateway) stays blocked; an agent restart clears every block', async () => {
    const { loadAgentPolicy } = await import('../../../agent/policy/view.ts');
    const h = await makeHarness();
    expect(await new PlatformPin(h, 2).setPin(PIN)).toBe(0);
    const stateDir = await mkdtemp(join(tmpdir(), 'kt-pin-view-'));
    const agent = await loadAgentPolicy(stateDir, h.presence);
    const connect = (fp: string, name: string) =>
      new PlatformPin({ ...h, auth: agent.view({ fingerprint: fp, name })(h.auth) as unknown as SoftAuthenticator }, 2);
    const b = connect(FP_B, 'customer-b');
    expect((await b.token('000000')).status).toBe(CTAP2_ERR_PIN_INVALID);
    // One wrong PIN, then a reconnect: the count survives it.
    const bAgain = connect(FP_B, 'customer-b');
    expect((await bAgain.token('000000')).status).toBe(CTAP2_ERR_PIN_INVALID);
    expect((await connect(FP_B, 'customer-b').token(PIN)).status).toBe(CTAP2_ERR_PIN_AUTH_BLOCKED);
    expect(await agent.pinGuard.recorded(FP_B)).toBe(true);
    expect(await new FilePinBlockStore(stateDir).isBlocked(FP_B)).toBe(true);
    expect((await connect(FP_A, 'customer-a').token(PIN)).status).toBe(0);
    agent.close();

    const restarted = await loadAgentPolicy(stateDir, h.presence);
    expect(await new FilePinBlockStore(stateDir).isBlocked(FP_B)).toBe(false);
    const b3 = new PlatformPin({ ...h, auth: restarted.view({ fingerprint: FP_B, name: 'customer-b' })(h.auth) as unknown as SoftAuthenticator }, 2);
    expect((await b3.token(PIN)).status).toBe(0);
    restarted.close();
  });
});
