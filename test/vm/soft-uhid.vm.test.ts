/**
 * `keytunnel soft --hid uhid` in a real Linux kernel (qemu guest): the soft authenticator behind the device
 * engine behind the uhid face, exercised by libfido2's tools (in the spirit of libfido2's tools/test.sh: make and
 * verify credentials, get and verify assertions, non-resident and resident, hmac-secret, without and with a PIN)
 * and by python-fido2's own hidraw backend as a WebAuthn client + relying party. One boot for all checks.
 */
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { CHECK_PRELUDE, LIBFIDO2_CHECKS, WEBAUTHN_CHECKS, checkPassed } from './checks.ts';
import { guestHookTimeout, runInGuest } from './harness.ts';
import type { GuestResult } from './harness.ts';

const SCRIPT = `${CHECK_PRELUDE}
. "$F/libfido2_checks.sh"
export KEYTUNNEL_PASSPHRASE=guest-test-passphrase
node "$R/bin/keytunnel.js" soft --hid uhid --approve always --state-dir "$PWD/state" > soft.log 2>&1 &
SOFT=$!
check hidraw-created wait_for /dev/hidraw0 300
fido2-token -L > token-list.txt 2>&1; cat token-list.txt
check fido2-token-lists-it grep -q '^/dev/hidraw0: vendor=0x1209, product=0x0001' token-list.txt
timeout 120 /usr/bin/python3 "$F/fido2_webauthn.py" py
check pings timeout 60 /usr/bin/python3 "$F/fido_ping.py" x 1 1200
check ping-2048 attempts 3 timeout 20 /usr/bin/python3 "$F/fido_ping.py" x 2048
check select-client-7609 timeout 60 /usr/bin/python3 "$F/select_ping.py" /dev/hidraw0 7609
libfido2_checks /dev/hidraw0 lf 1234
timeout 120 /usr/bin/python3 "$F/fido2_webauthn.py" pypin 1234
kill -TERM $SOFT; wait $SOFT; echo "keytunnel soft exited with $?"
check soft-exit-clean grep -q '"msg":"stopped"' soft.log
check hidraw-removed sh -c '! ls /dev/hidraw* >/dev/null 2>&1'
tail -20 soft.log
`;

describe('keytunnel soft --hid uhid in a real kernel', () => {
  let r: GuestResult | undefined;
  beforeAll(async () => {
    r = await runInGuest(SCRIPT, { timeoutMs: 480_000, keepShare: true });
  }, guestHookTimeout(480_000));
  afterAll(() => {
    if (r && r.code === 0) rmSync(r.share, { recursive: true, force: true });
  });

  it('creates a hidraw node that libfido2 lists', () => {
    checkPassed(r, 'hidraw-created');
    checkPassed(r, 'fido2-token-lists-it');
  });
  it.each(WEBAUTHN_CHECKS)('python-fido2 (no PIN): %s', (name) => checkPassed(r, `py-${name}`));
  it('python-fido2 PINGs of 1200 bytes (maxMsgSize) come back intact', () => checkPassed(r, 'pings'));
  it('a 2048-byte PING comes back intact (within 3 attempts under emulation: 36 reports > the 32 the kernel queues)', () =>
    checkPassed(r, 'ping-2048'));
  it('a 7609-byte answer reaches a client that reads one report per select()', () =>
    checkPassed(r, 'select-client-7609'));
  it.each(LIBFIDO2_CHECKS)('libfido2 tools: %s', (name) => checkPassed(r, `lf-${name}`));
  it.each(WEBAUTHN_CHECKS)('python-fido2 with the PIN: %s', (name) => checkPassed(r, `pypin-${name}`));
  it('SIGTERM stops keytunnel soft cleanly and removes the device', () => {
    checkPassed(r, 'soft-exit-clean');
    checkPassed(r, 'hidraw-removed');
  });
});
