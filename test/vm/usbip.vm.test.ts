/**
 * The USB/IP face in a real Linux kernel (qemu guest): `usbip list` sees the exported device, `usbip attach`
 * (vhci-hcd) enumerates it as a full-speed USB HID device, usbhid gives it a hidraw node, libfido2 and
 * python-fido2 talk CTAPHID through it (messages up to the 7609-byte maximum), `usbip detach` closes the
 * HostLink, and SIGTERM stops the server. One boot for all checks.
 */
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHECK_PRELUDE, checkPassed } from './checks.ts';
import { guestHookTimeout, runInGuest } from './harness.ts';
import type { GuestResult } from './harness.ts';

const SCRIPT = `${CHECK_PRELUDE}
node --import "$TSX_LOADER" "$F/echo-face.ts" usbip "keytunnel echo" "$PWD/stats.json" 3240 > face.log 2>&1 &
FACE=$!
i=0; until grep -q '^ready' face.log || [ $i -ge 200 ]; do sleep 0.1; i=$((i+1)); done
usbip list -r 127.0.0.1 > list.txt 2>&1; cat list.txt
check usbip-list grep -q '1-1: .*(1209:0001)' list.txt
check usbip-attach usbip attach -r 127.0.0.1 -b 1-1
check hidraw-created wait_for /dev/hidraw0
cat /sys/bus/usb/devices/*/product 2>/dev/null
check usb-product-string grep -qx 'keytunnel echo' /sys/bus/usb/devices/2-1/product /sys/bus/usb/devices/1-1/product /sys/bus/usb/devices/3-1/product
fido2-token -L > token-list.txt 2>&1; cat token-list.txt
check fido2-token-lists-it grep -q '^/dev/hidraw0: vendor=0x1209, product=0x0001 (keytunnel keytunnel echo)' token-list.txt
check python-fido2-pings timeout 120 /usr/bin/python3 "$F/fido_ping.py" x 0 1 57 58 59 1200 2048 7609
check select-client-7609 timeout 60 /usr/bin/python3 "$F/select_ping.py" /dev/hidraw0 7609
usbip port
check usbip-detach usbip detach -p 0
check hidraw-removed sh -c 'i=0; while ls /dev/hidraw* >/dev/null 2>&1; do i=$((i+1)); [ $i -ge 50 ] && exit 1; sleep 0.1; done'
kill -TERM $FACE; wait $FACE; echo "face exited with $?"
check face-exit-clean grep -q '^closed$' face.log
cat face.log; echo; cat stats.json; echo
dmesg | grep -i -E 'usb|vhci|hid' | tail -25
`;

describe('USB/IP face in a real kernel (vhci-hcd)', () => {
  let r: GuestResult | undefined;
  beforeAll(async () => {
    r = await runInGuest(SCRIPT, { timeoutMs: 280_000, keepShare: true });
  }, guestHookTimeout(280_000));
  afterAll(() => {
    if (r && r.code === 0) rmSync(r.share, { recursive: true, force: true });
  });

  it('usbip list -r shows the exported device', () => checkPassed(r, 'usbip-list'));
  it('usbip attach enumerates it and usbhid creates a hidraw node', () => {
    checkPassed(r, 'usbip-attach');
    checkPassed(r, 'hidraw-created');
  });
  it('the USB product string is the authenticator name', () => checkPassed(r, 'usb-product-string'));
  it('libfido2 (fido2-token -L) lists it', () => checkPassed(r, 'fido2-token-lists-it'));
  it('python-fido2 PINGs up to 7609 bytes come back intact', () => checkPassed(r, 'python-fido2-pings'));
  it('a 7609-byte answer reaches a client that reads one report per select()', () =>
    checkPassed(r, 'select-client-7609'));
  it('usbip detach removes the device and closes the HostLink', () => {
    checkPassed(r, 'usbip-detach');
    checkPassed(r, 'hidraw-removed');
    const stats = JSON.parse(readFileSync(join(r!.share, 'stats.json'), 'utf8')) as { attaches: number; closes: number };
    expect(stats.attaches).toBe(1);
    expect(stats.closes).toBe(1);
  });
  it('SIGTERM stops the server cleanly', () => checkPassed(r, 'face-exit-clean'));
});
