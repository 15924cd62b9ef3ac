/**
 * The whole relay in a real Linux kernel (qemu guest, test/vm/harness.ts), with real HID on both ends:
 *
 *   libfido2 tools → /dev/hidraw1 (uhid, made by `keytunnel gateway --hid uhid`) → gateway → TLS tunnel
 *     → `keytunnel agent --hardware` → node-hid → /dev/hidraw0 (a "hardware key": `keytunnel soft --hid uhid`)
 *
 * One boot, one node process (fixtures/guest-relay.ts: what the commands run, without a CLI start per process,
 * which costs minutes under TCG): libfido2's make/verify/assert checks (non-resident, resident, hmac-secret, with
 * and without a PIN, credential management) through the relay; the gateway's own device carries the serial that
 * the agent skips; then the gateway restarts on the USB/IP face (`usbip attach`) and the same key answers there;
 * SIGTERM stops everything and every device disappears.
 */
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHECK_PRELUDE, checkPassed } from '../vm/checks.ts';
import { guestHookTimeout, runInGuest, type GuestResult } from '../vm/harness.ts';

/** The guest's own budget (once it holds a slot): ~1-2 min on an idle machine. */
const GUEST_TIMEOUT_MS = 420_000;

const SCRIPT = `${CHECK_PRELUDE}
. "$F/libfido2_checks.sh"
wait_log() { i=0; until grep -q "$2" "$1" || [ $i -ge \${3:-600} ]; do sleep 0.1; i=$((i+1)); done; grep -q "$2" "$1"; }
node --import "$TSX_LOADER" "$R/test/relay/fixtures/guest-relay.ts" "$PWD" > relay.out 2> relay.log &
P=$!
check relay-ready wait_log relay.out '^READY' 4000
cat relay.out
fido2-token -L > token-list.txt 2>&1; cat token-list.txt
check two-devices-listed sh -c '[ "$(grep -c "^/dev/hidraw" token-list.txt)" -eq 2 ]'
check gateway-device-serial grep -q '"path":"/dev/hidraw1","serialNumber":"keytunnel-gateway-0"' relay.out

libfido2_checks /dev/hidraw1 relay

kill -USR1 $P
check usbip-device-ready wait_log relay.out '^USBIP-READY' 1200
check uhid-device-removed sh -c '! [ -e /dev/hidraw1 ]'
check usbip-attach usbip attach -r 127.0.0.1 -b 1-1
check usbip-hidraw wait_for /dev/hidraw1 300
fido2-token -I /dev/hidraw1 > info-usbip.txt 2>&1; cat info-usbip.txt
check usbip-getinfo-through-relay grep -q 'FIDO_2_1' info-usbip.txt
check usbip-getinfo-pin-set grep -q 'clientPin' info-usbip.txt
usbip detach -p 0 || true
kill -TERM $P; wait $P; echo "relay exit $?" > relay.rc; cat relay.rc
check relay-exit-0 grep -q 'relay exit 0' relay.rc
check stopped grep -q '^STOPPED' relay.out
check all-devices-removed sh -c '! ls /dev/hidraw* >/dev/null 2>&1'
echo "--- relay.log"; tail -40 relay.log
`;

describe('relay in a real kernel: libfido2 → uhid gateway → tunnel → agent --hardware → node-hid → key', () => {
  let r: GuestResult | undefined;
  beforeAll(async () => {
    r = await runInGuest(SCRIPT, { timeoutMs: GUEST_TIMEOUT_MS, keepShare: true });
  }, guestHookTimeout(GUEST_TIMEOUT_MS));
  afterAll(() => {
    if (r && r.code === 0) rmSync(r.share, { recursive: true, force: true });
  });

  it('the agent finds the key with node-hid and the gateway creates its uhid device', () => {
    checkPassed(r, 'relay-ready');
    checkPassed(r, 'two-devices-listed');
  });
  it("the gateway's device carries the keytunnel-gateway serial (so an agent skips it)", () => checkPassed(r, 'gateway-device-serial'));
  it('every libfido2 check of test/vm/fixtures/libfido2_checks.sh passes through the relay', () => {
    if (!r) throw new Error('the guest did not run');
    const results = [...r.console.matchAll(/^CHECK (relay-\S+) (\S+)/gm)].map((m) => [m[1], m[2]]);
    expect(results.filter(([, outcome]) => outcome !== 'ok'), r.console).toEqual([]);
    // The fixture makes/verifies/asserts non-resident, up=false, hmac-secret and resident credentials, then again
    // with a PIN, plus a wrong PIN and credential management: a few dozen checks.
    expect(results.length).toBeGreaterThanOrEqual(25);
  });
  it('libfido2 getInfo, make/assert (resident and not) through the relay', () => {
    for (const name of ['getinfo', 'getinfo-aaguid', 'wrap-make', 'wrap-assert', 'rk-make', 'rk-assert', 'hs-assert']) {
      checkPassed(r, `relay-${name}`);
    }
  });
  it('set a PIN through the relay; getInfo (served from the gateway cache) shows it at once', () => {
    checkPassed(r, 'relay-set-pin');
    checkPassed(r, 'relay-getinfo-clientpin-set');
  });
  it('with the PIN: a wrong PIN is refused and credential management lists the RPs', () => {
    checkPassed(r, 'relay-wrong-pin-fails');
    checkPassed(r, 'relay-credman-rps');
  });
  it('the uhid gateway stops (its device goes) and a gateway on the USB/IP face serves the same key', () => {
    checkPassed(r, 'usbip-device-ready');
    checkPassed(r, 'uhid-device-removed');
    checkPassed(r, 'usbip-attach');
    checkPassed(r, 'usbip-hidraw');
    checkPassed(r, 'usbip-getinfo-through-relay');
    checkPassed(r, 'usbip-getinfo-pin-set');
  });
  it('SIGTERM stops everything cleanly (exit 0, every device removed)', () => {
    checkPassed(r, 'relay-exit-0');
    checkPassed(r, 'stopped');
    checkPassed(r, 'all-devices-removed');
  });
});
