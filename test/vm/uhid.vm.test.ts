/**
 * The uhid face in a real Linux kernel (qemu guest): the kernel creates a hidraw FIDO device from our
 * UHID_CREATE2, libfido2 and python-fido2 find it and exchange CTAPHID messages with the device behind the face,
 * long messages survive in both directions, and SIGTERM destroys the device cleanly. One boot for all checks.
 */
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHECK_PRELUDE, checkPassed } from './checks.ts';
import { guestHookTimeout, runInGuest } from './harness.ts';
import type { GuestResult } from './harness.ts';

const SCRIPT = `${CHECK_PRELUDE}
node --import "$TSX_LOADER" "$F/echo-face.ts" uhid "keytunnel echo" "$PWD/stats.json" > face.log 2>&1 &
FACE=$!
check hidraw-created wait_for /dev/hidraw0
fido2-token -L > token-list.txt 2>&1; cat token-list.txt
check fido2-token-lists-it grep -q '^/dev/hidraw0: vendor=0x1209, product=0x0001' token-list.txt
check python-fido2-pings timeout 60 /usr/bin/python3 "$F/fido_ping.py" x 0 1 57 58 59 1200
# 2048 bytes = 36 output reports, more than the 32 UHID_OUTPUT events the kernel queues: it survives when the
# reader thread drains the queue during the client's burst, which TCG's scheduling occasionally prevents.
check python-fido2-ping-2048 attempts 3 timeout 20 /usr/bin/python3 "$F/fido_ping.py" x 2048
check select-client-7609 timeout 60 /usr/bin/python3 "$F/select_ping.py" /dev/hidraw0 7609
# Probe how far a client that writes back to back gets (informational: the kernel's 32-event output queue).
for n in 3000 4096 7609; do
  if timeout 8 /usr/bin/python3 "$F/fido_ping.py" x $n >/dev/null 2>&1; then echo "PROBE $n ok"; else echo "PROBE $n lost"; fi
done
kill -TERM $FACE; wait $FACE; echo "face exited with $?"
check face-exit-clean grep -q '^closed$' face.log
check hidraw-removed sh -c '! ls /dev/hidraw* >/dev/null 2>&1'
cat face.log; echo; cat stats.json; echo
dmesg | grep -i -E 'uhid|hid-generic|output queue' | tail -20
`;

describe('uhid face in a real kernel', () => {
  let r: GuestResult | undefined;
  beforeAll(async () => {
    r = await runInGuest(SCRIPT, { timeoutMs: 280_000, keepShare: true });
  }, guestHookTimeout(280_000));
  afterAll(() => {
    if (r && r.code === 0) rmSync(r.share, { recursive: true, force: true });
  });

  it('creates a hidraw node', () => checkPassed(r, 'hidraw-created'));
  it('libfido2 (fido2-token -L) lists the device', () => checkPassed(r, 'fido2-token-lists-it'));
  it('python-fido2 finds it and PINGs up to 1200 bytes (maxMsgSize) come back intact', () => checkPassed(r, 'python-fido2-pings'));
  it('a 2048-byte PING comes back intact (within 3 attempts under emulation)', () => checkPassed(r, 'python-fido2-ping-2048'));
  it('a 7609-byte answer reaches a client that reads one report per select()', () =>
    checkPassed(r, 'select-client-7609'));
  it('SIGTERM closes the face: the process exits and the device is removed', () => {
    checkPassed(r, 'face-exit-clean');
    checkPassed(r, 'hidraw-removed');
  });
  it('every host open attached a link and every close closed it', () => {
    const stats = JSON.parse(readFileSync(join(r!.share, 'stats.json'), 'utf8')) as {
      attaches: number;
      closes: number;
      largestPing: number;
    };
    expect(stats.attaches).toBeGreaterThan(0);
    expect(stats.closes).toBe(stats.attaches);
    expect(stats.largestPing).toBeGreaterThanOrEqual(7609);
  });
});
