/**
 * A real browser against keytunnel's virtual key, locally in the qemu guest: `keytunnel soft --hid uhid --approve
 * always` makes the uhid device, headless Chromium (Debian's) runs navigator.credentials.create() then .get() on
 * the sample relying party's page (test/browser/), and the relying party — @simplewebauthn/server — verifies
 * both. The server's verdict is the assertion; clientDataJSON is parsed there, never compared as a string.
 */
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHROMIUM_PRELUDE, readVerdict } from '../browser/chromium.ts';
import type { RpVerdict } from '../browser/rp-server.ts';
import { CHECK_PRELUDE, checkPassed } from './checks.ts';
import { guestHookTimeout, runInGuest, type GuestResult } from './harness.ts';

const SOFT_AAGUID = '70829c58-064f-4078-b3c7-8dc3b4c185b1';
const RP_PORT = 8080;
/** One boot ≈ 60 s on an idle machine (Chromium ≈ 25 s of it); the relying party's own deadline is 150 s. */
const GUEST_TIMEOUT_MS = 300_000;

const SCRIPT = `${CHECK_PRELUDE}${CHROMIUM_PRELUDE}
export KEYTUNNEL_PASSPHRASE=browser-test-passphrase
node "$R/bin/keytunnel.js" soft --hid uhid --approve always --state-dir /tmp/soft > soft.log 2>&1 &
SOFT=$!
check soft-device wait_for /dev/hidraw0 1200
ceremony local ${RP_PORT}
kill -TERM $SOFT; wait $SOFT; echo "soft exited with $?"
check soft-device-removed sh -c '! ls /dev/hidraw* >/dev/null 2>&1'
echo '--- soft.log'; cat soft.log
`;

describe('Chromium in the guest: keytunnel soft on uhid', () => {
  let r: GuestResult | undefined;
  let verdict: RpVerdict | undefined;
  beforeAll(async () => {
    r = await runInGuest(SCRIPT, { timeoutMs: GUEST_TIMEOUT_MS, keepShare: true });
    try {
      verdict = readVerdict(r.share, 'local');
    } catch {
      verdict = undefined;
    }
  }, guestHookTimeout(GUEST_TIMEOUT_MS));
  afterAll(() => {
    if (r && r.code === 0) rmSync(r.share, { recursive: true, force: true });
  });

  /** The relying party's verdict, or a failure carrying the guest console. */
  const v = (): RpVerdict => {
    if (!verdict) throw new Error(`no verdict from the relying party (guest exit ${r?.code}); guest console:\n${r?.console}`);
    return verdict;
  };
  const explain = (): string => `verdict ${JSON.stringify(verdict)}; guest console:\n${r?.console}`;

  it('the soft authenticator appears as a hidraw device', () => checkPassed(r, 'soft-device'));

  it('create(): the relying party verifies the registration (packed attestation, the soft AAGUID)', () => {
    const reg = v().registration;
    expect(reg?.verified, explain()).toBe(true);
    expect(reg?.fmt).toBe('packed');
    expect(reg?.aaguid).toBe(SOFT_AAGUID);
    expect(reg?.clientData?.type).toBe('webauthn.create');
    expect(reg?.clientData?.origin).toBe(`http://localhost:${RP_PORT}`);
  });

  it('get(): the relying party verifies the assertion and the signature counter moved', () => {
    const auth = v().authentication;
    expect(auth?.verified, explain()).toBe(true);
    expect(auth?.clientData?.type).toBe('webauthn.get');
    expect(auth?.clientData?.origin).toBe(`http://localhost:${RP_PORT}`);
    expect(auth?.newCounter).toBeGreaterThan(0);
  });

  it('the page reported success and no error, before any watchdog fired', () => {
    expect(v().clientError, explain()).toBeUndefined();
    expect(v().deadline).toBeUndefined();
    expect(v().done).toEqual({ ok: true });
    expect(v().requests).toEqual(
      expect.arrayContaining(['GET /registration/options', 'POST /registration/verify', 'GET /authentication/options', 'POST /authentication/verify', 'POST /done']),
    );
  });

  it('SIGTERM removes the device', () => checkPassed(r, 'soft-device-removed'));
});
