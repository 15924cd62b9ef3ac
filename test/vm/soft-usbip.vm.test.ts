/**
 * `keytunnel soft --hid usbip` in a real Linux kernel (qemu guest): `usbip attach` (vhci-hcd) imports the soft
 * authenticator as a full-speed USB security key; the same libfido2 and python-fido2 checks as over uhid pass
 * through the USB device, and a 7609-byte PING (the CTAPHID maximum) comes back intact. One boot for all checks.
 */
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { CHECK_PRELUDE, LIBFIDO2_CHECKS, WEBAUTHN_CHECKS, checkPassed } from './checks.ts';
import { guestHookTimeout, runInGuest } from './harness.ts';
import type { GuestResult } from './harness.ts';

const SCRIPT = `${CHECK_PRELUDE}
. "$F/libfido2_checks.sh"
export KEYTUNNEL_PASSPHRASE=guest-test-passphrase
node "$R/bin/keytunnel.js" soft --hid usbip --approve always --state-dir "$PWD/state" > soft.log 2>&1 &
SOFT=$!
i=0; until grep -q 'listening on usbip' soft.log || [ $i -ge 300 ]; do sleep 0.1; i=$((i+1)); done
check usbip-attach usbip attach -r 127.0.0.1 -b 1-1
check hidraw-created wait_for /dev/hidraw0 100
fido2-token -L > token-list.txt 2>&1; cat token-list.txt
check fido2-token-lists-it grep -q '^/dev/hidraw0: vendor=0x1209, product=0x0001 (keytunnel keytunnel soft authenticator)' token-list.txt
timeout 120 /usr/bin/python3 "$F/fido2_webauthn.py" py
check ping-7609 timeout 120 /usr/bin/python3 "$F/fido_ping.py" x 1 1200 7609
libfido2_checks /dev/hidraw0 lf 1234
timeout 120 /usr/bin/python3 "$F/fido2_webauthn.py" pypin 1234
check usbip-detach usbip detach -p 0
kill -TERM $SOFT; wait $SOFT; echo "keytunnel soft exited with $?"
check soft-exit-clean grep -q '"msg":"stopped"' soft.log
tail -20 soft.log
`;

describe('keytunnel soft --hid usbip in a real kernel (vhci-hcd)', () => {
  let r: GuestResult | undefined;
  beforeAll(async () => {
    r = await runInGuest(SCRIPT, { timeoutMs: 480_000, keepShare: true });
  }, guestHookTimeout(480_000));
  afterAll(() => {
    if (r && r.code === 0) rmSync(r.share, { recursive: true, force: true });
  });

  it('usbip attach imports it and libfido2 lists the USB security key', () => {
    checkPassed(r, 'usbip-attach');
    checkPassed(r, 'hidraw-created');
    checkPassed(r, 'fido2-token-lists-it');
  });
  it.each(WEBAUTHN_CHECKS)('python-fido2 (no PIN): %s', (name) => checkPassed(r, `py-${name}`));
  it('python-fido2 PINGs up to 7609 bytes come back intact', () => checkPassed(r, 'ping-7609'));
  it.each(LIBFIDO2_CHECKS)('libfido2 tools: %s', (name) => checkPassed(r, `lf-${name}`));
  it.each(WEBAUTHN_CHECKS)('python-fido2 with the PIN: %s', (name) => checkPassed(r, `pypin-${name}`));
  it('usbip detach and SIGTERM stop cleanly', () => {
    checkPassed(r, 'usbip-detach');
    checkPassed(r, 'soft-exit-clean');
  });
});
