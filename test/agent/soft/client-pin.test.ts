import { describe, expect, it } from 'vitest';
import type { CborMap } from '../../../protocol/cbor.ts';
import {
  CTAP1_ERR_INVALID_PARAMETER,
  CTAP2_ERR_CBOR_UNEXPECTED_TYPE,
  CTAP2_ERR_INVALID_SUBCOMMAND,
  CTAP2_ERR_MISSING_PARAMETER,
  CTAP2_ERR_PIN_AUTH_BLOCKED,
  CTAP2_ERR_PIN_AUTH_INVALID,
  CTAP2_ERR_PIN_BLOCKED,
  CTAP2_ERR_PIN_INVALID,
  CTAP2_ERR_PIN_NOT_SET,
  CTAP2_ERR_PIN_POLICY_VIOLATION,
  CTAP2_ERR_UNAUTHORIZED_PERMISSION,
} from '../../../protocol/ctap2.ts';
import { ctap, m, makeHarness, mcParams, PlatformPin, RP_ID, sha256, type Harness } from './helpers.ts';

const CP = 0x06;

async function retries(h: Harness): Promise<{ retries: unknown; powerCycle: unknown }> {
  const r = await ctap(h, CP, m([[2, 1]]));
  expect(r.status).toBe(0);
  return { retries: (r.body as CborMap).get(3), powerCycle: (r.body as CborMap).get(4) };
}

async function clientPinSet(h: Harness): Promise<boolean> {
  const info = await ctap(h, 0x04);
  return ((info.body as CborMap).get(4) as CborMap).get('clientPin') as boolean;
}

for (const protocol of [1, 2] as const) {
  describe(`authenticatorClientPIN, PIN/UV auth protocol ${protocol}`, () => {
    it('getKeyAgreement returns a P-256 COSE key with alg -25', async () => {
      const h = await makeHarness();
      const r = await ctap(h, CP, m([[1, protocol], [2, 2]]));
      expect(r.status).toBe(0);
      const key = (r.body as CborMap).get(1) as CborMap;
      expect(key.get(1)).toBe(2);
      expect(key.get(3)).toBe(-25);
      expect(key.get(-1)).toBe(1);
      expect(key.get(-2)).toHaveLength(32);
      expect(key.get(-3)).toHaveLength(32);
    });

    it('setPIN, then getPinToken, changePIN; clientPin option follows', async () => {
      const h = await makeHarness();
      const pin = new PlatformPin(h, protocol);
      expect(await clientPinSet(h)).toBe(false);
      expect((await pin.token('1234')).status).toBe(CTAP2_ERR_PIN_NOT_SET);
      expect(await pin.changePin('1234', '5678')).toBe(CTAP2_ERR_PIN_NOT_SET);
      expect(await pin.setPin('1234')).toBe(0);
      expect(await clientPinSet(h)).toBe(true);
      expect(await pin.setPin('9999')).toBe(CTAP2_ERR_PIN_AUTH_INVALID); // already set
      const t = await pin.token('1234');
      expect(t.status).toBe(0);
      expect(t.token).toHaveLength(32);
      expect(await pin.changePin('1234', 'abcdé')).toBe(0);
      expect((await pin.token('1234')).status).toBe(CTAP2_ERR_PIN_INVALID);
      expect((await pin.token('abcdé')).status).toBe(0);
      expect((await retries(h)).retries).toBe(8);
    });

    it('PIN policy: shorter than 4 code points, 64 bytes without terminator, bad padding length', async () => {
      const h = await makeHarness();
      const pin = new PlatformPin(h, protocol);
      expect(await pin.setPin('123')).toBe(CTAP2_ERR_PIN_POLICY_VIOLATION);
      expect(await pin.setPin('ééé')).toBe(CTAP2_ERR_PIN_POLICY_VIOLATION); // 6 bytes but 3 code points
      expect(await pin.setPin(new Uint8Array(64).fill(0x31))).toBe(CTAP2_ERR_PIN_POLICY_VIOLATION);
      expect(await pin.setPin(new Uint8Array(32).fill(0x31))).toBe(CTAP1_ERR_INVALID_PARAMETER);
      expect(await pin.setPin('x'.repeat(63))).toBe(0);
    });

    it('setPIN with a wrong pinUvAuthParam is rejected and stores nothing', async () => {
      const h = await makeHarness();
      const pin = new PlatformPin(h, protocol);
      const { cose, shared } = await pin.keyAgreement();
      const newPinEnc = pin.encrypt(shared, PlatformPin.pad('1234'));
      const badAuth = new Uint8Array(protocol === 1 ? 16 : 32);
      const saves = h.store.saves;
      expect((await ctap(h, CP, m([[1, protocol], [2, 3], [3, cose], [4, badAuth], [5, newPinEnc]]))).status).toBe(CTAP2_ERR_PIN_AUTH_INVALID);
      expect(h.store.saves).toBe(saves);
      expect(await clientPinSet(h)).toBe(false);
    });

    it('wrong PIN: retries decrement and persist, 3 in a row → PIN_AUTH_BLOCKED until power cycle, 0 → PIN_BLOCKED', async () => {
      const h = await makeHarness();
      const pin = new PlatformPin(h, protocol);
      expect(await pin.setPin('1234')).toBe(0);
      expect((await pin.token('0000')).status).toBe(CTAP2_ERR_PIN_INVALID);
      expect((await pin.token('0000')).status).toBe(CTAP2_ERR_PIN_INVALID);
      expect((await pin.token('0000')).status).toBe(CTAP2_ERR_PIN_AUTH_BLOCKED);
      expect(await retries(h)).toEqual({ retries: 5, powerCycle: true });
      // Even the right PIN is refused until a power cycle.
      expect((await pin.token('1234')).status).toBe(CTAP2_ERR_PIN_AUTH_BLOCKED);
      expect(await pin.changePin('1234', '5678')).toBe(CTAP2_ERR_PIN_AUTH_BLOCKED);
      // Power cycle = reopen from the store: retries persisted.
      let cur = await makeHarness({ store: h.store, clock: h.clock });
      expect(await retries(cur)).toEqual({ retries: 5, powerCycle: false });
      const pin2 = new PlatformPin(cur, protocol);
      expect((await pin2.token('1234')).status).toBe(0);
      expect((await retries(cur)).retries).toBe(8);
      // Burn all 8 retries across power cycles.
      let last = 0;
      for (let i = 0; i < 8; i++) {
        if (i % 3 === 0 && i > 0) cur = await makeHarness({ store: h.store, clock: h.clock });
        last = (await new PlatformPin(cur, protocol).token('0000')).status;
      }
      expect(last).toBe(CTAP2_ERR_PIN_BLOCKED);
      expect((await retries(cur)).retries).toBe(0);
      cur = await makeHarness({ store: h.store, clock: h.clock });
      expect((await new PlatformPin(cur, protocol).token('1234')).status).toBe(CTAP2_ERR_PIN_BLOCKED);
    });

    it('getPinUvAuthTokenUsingPinWithPermissions: permission checks and rpId binding', async () => {
      const h = await makeHarness();
      const pin = new PlatformPin(h, protocol);
      expect(await pin.setPin('1234')).toBe(0);
      expect((await pin.token('1234', 0)).status).toBe(CTAP1_ERR_INVALID_PARAMETER);
      expect((await pin.token('1234', 0x08)).status).toBe(CTAP2_ERR_UNAUTHORIZED_PERMISSION);
      expect((await pin.token('1234', 0x20)).status).toBe(CTAP2_ERR_UNAUTHORIZED_PERMISSION);
      // A ga-only token cannot make credentials.
      const ga = await pin.token('1234', 0x02, RP_ID);
      const cdh = sha256('client data');
      const r = await ctap(h, 0x01, mcParams({ extra: [[8, pin.authenticate(ga.token as Uint8Array, cdh)], [9, protocol]] }));
      expect(r.status).toBe(CTAP2_ERR_PIN_AUTH_INVALID);
    });

    it('pinUvAuthToken expires when unused for 30 s', async () => {
      const h = await makeHarness();
      const pin = new PlatformPin(h, protocol);
      expect(await pin.setPin('1234')).toBe(0);
      const { token } = await pin.token('1234', 0x01);
      h.clock.advance(30_001);
      const cdh = sha256('client data');
      expect((await ctap(h, 0x01, mcParams({ extra: [[8, pin.authenticate(token as Uint8Array, cdh)], [9, protocol]] }))).status).toBe(CTAP2_ERR_PIN_AUTH_INVALID);
      const fresh = await pin.token('1234', 0x01);
      h.clock.advance(29_000);
      expect((await ctap(h, 0x01, mcParams({ extra: [[8, pin.authenticate(fresh.token as Uint8Array, cdh)], [9, protocol]] }))).status).toBe(0);
    });

    it('a new token invalidates the previous one', async () => {
      const h = await makeHarness();
      const pin = new PlatformPin(h, protocol);
      expect(await pin.setPin('1234')).toBe(0);
      const a = await pin.token('1234', 0x01);
      await pin.token('1234', 0x01);
      const cdh = sha256('client data');
      expect((await ctap(h, 0x01, mcParams({ extra: [[8, pin.authenticate(a.token as Uint8Array, cdh)], [9, protocol]] }))).status).toBe(CTAP2_ERR_PIN_AUTH_INVALID);
    });
  });
}

describe('authenticatorClientPIN request validation', () => {
  it('missing / mistyped / unsupported members', async () => {
    const h = await makeHarness();
    expect((await ctap(h, CP, m([[1, 1]]))).status).toBe(CTAP2_ERR_MISSING_PARAMETER);
    expect((await ctap(h, CP, m([[2, 2]]))).status).toBe(CTAP2_ERR_MISSING_PARAMETER);
    expect((await ctap(h, CP, m([[1, 3], [2, 2]]))).status).toBe(CTAP1_ERR_INVALID_PARAMETER);
    expect((await ctap(h, CP, m([[1, 1], [2, 'two']]))).status).toBe(CTAP2_ERR_CBOR_UNEXPECTED_TYPE);
    expect((await ctap(h, CP, m([[1, 1], [2, 0x06]]))).status).toBe(CTAP2_ERR_INVALID_SUBCOMMAND);
    expect((await ctap(h, CP, m([[1, 1], [2, 0x42]]))).status).toBe(CTAP2_ERR_INVALID_SUBCOMMAND);
    expect((await ctap(h, CP, m([[1, 1], [2, 3]]))).status).toBe(CTAP2_ERR_MISSING_PARAMETER);
    // keyAgreement that is not a P-256 point.
    const bogus = m([[1, 2], [3, -25], [-1, 1], [-2, new Uint8Array(32).fill(1)], [-3, new Uint8Array(32).fill(2)]]);
    expect((await ctap(h, CP, m([[1, 1], [2, 3], [3, bogus], [4, new Uint8Array(16)], [5, new Uint8Array(64)]]))).status).toBe(CTAP1_ERR_INVALID_PARAMETER);
    const okp = m([[1, 1], [3, -25], [-1, 6], [-2, new Uint8Array(32)], [-3, new Uint8Array(32)]]);
    expect((await ctap(h, CP, m([[1, 1], [2, 3], [3, okp], [4, new Uint8Array(16)], [5, new Uint8Array(64)]]))).status).toBe(CTAP1_ERR_INVALID_PARAMETER);
    expect((await ctap(h, CP, m([[1, 1], [2, 3], [3, 'key'], [4, new Uint8Array(16)], [5, new Uint8Array(64)]]))).status).toBe(CTAP2_ERR_CBOR_UNEXPECTED_TYPE);
    // getPinToken must not carry permissions.
    const pin = new PlatformPin(h, 1);
    expect(await pin.setPin('1234')).toBe(0);
    const { cose, shared } = await pin.keyAgreement();
    const pinHashEnc = pin.encrypt(shared, sha256('1234').subarray(0, 16));
    expect((await ctap(h, CP, m([[1, 1], [2, 5], [3, cose], [6, pinHashEnc], [9, 1]]))).status).toBe(CTAP1_ERR_INVALID_PARAMETER);
    expect((await retries(h)).retries).toBe(8);
  });
});
