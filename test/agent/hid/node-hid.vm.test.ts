/**
 * The agent's real node-hid path in a real Linux kernel (qemu guest): a uhid FIDO device (device engine +
 * scripted authenticator) appears as /dev/hidrawN; `keytunnel devices`, scripts/hid-probe.ts and discovery +
 * HidAuthenticator find and use it through node-hid's hidraw backend. One boot for all checks.
 */
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHECK_PRELUDE, checkPassed } from '../../vm/checks.ts';
import { type GuestResult, guestHookTimeout, runInGuest } from '../../vm/harness.ts';

const SCRIPT = `${CHECK_PRELUDE}
H="$R/test/agent/authenticators/hardware/fixtures"
node --import "$TSX_LOADER" "$H/uhid-scripted-key.ts" > key.log 2>&1 &
KEY=$!
check hidraw-created wait_for /dev/hidraw0
node "$R/bin/keytunnel.js" devices > devices.txt 2> devices.err; echo "devices exit $?"; cat devices.txt devices.err
node "$R/bin/keytunnel.js" devices --json > devices.json 2>&1
check devices-lists-it grep -q '/dev/hidraw0' devices.txt
node --import "$TSX_LOADER" "$R/scripts/hid-probe.ts" --wait-ms 5000 > probe.json 2> probe.err; echo "probe exit $?" | tee probe.rc
cat probe.json probe.err
check probe-ok grep -q 'probe exit 0' probe.rc
timeout 180 node --import "$TSX_LOADER" "$H/hid-exercise.ts" > exercise.txt 2>&1 &
EX=$!
# The exercise writes "hanging" once a request waits on the key: unplug the key (the uhid face goes away).
check exercise-hanging wait_for hanging 600
kill -TERM $KEY; wait $KEY
wait $EX; echo "exercise exit $?"
cat exercise.txt
check exercise-ok grep -q '^EXERCISE ' exercise.txt
cat key.log
check key-saw-cancel grep -q '^cancelled$' key.log
`;

/** Guest run time once it holds a guest slot (≈ 1 min measured on an idle machine). */
const GUEST_TIMEOUT_MS = 240_000;

describe('agent hardware path through node-hid in a real kernel (uhid key)', () => {
  let r: GuestResult | undefined;
  beforeAll(async () => {
    r = await runInGuest(SCRIPT, { timeoutMs: GUEST_TIMEOUT_MS, keepShare: true });
  }, guestHookTimeout(GUEST_TIMEOUT_MS));
  afterAll(() => {
    if (r && r.code === 0) rmSync(r.share, { recursive: true, force: true });
  });

  it('the uhid key appears as /dev/hidraw0', () => checkPassed(r, 'hidraw-created'));

  it('keytunnel devices lists it (table and --json)', () => {
    checkPassed(r, 'devices-lists-it');
    const list = JSON.parse(readFileSync(join(r!.share, 'devices.json'), 'utf8')) as Array<{ path: string; vidPid: string }>;
    expect(list.map((d) => d.path)).toContain('/dev/hidraw0');
  });

  it('hid-probe opens it via node-hid and reads getInfo', () => {
    checkPassed(r, 'probe-ok');
    const probe = JSON.parse(readFileSync(join(r!.share, 'probe.json'), 'utf8')) as {
      keys: Array<{ path: string; ctap1: boolean; wink: boolean; getInfo: { versions: string[] } }>;
    };
    expect(probe.keys).toHaveLength(1);
    expect(probe.keys[0]).toMatchObject({ path: '/dev/hidraw0', ctap1: false, wink: true });
    expect(probe.keys[0].getInfo.versions).toEqual(['FIDO_2_0']);
  });

  it('discovery + HidAuthenticator: makeCredential with keepalive UPNEEDED, cancel, and a request after it', () => {
    checkPassed(r, 'exercise-ok');
    checkPassed(r, 'key-saw-cancel');
    const line = readFileSync(join(r!.share, 'exercise.txt'), 'utf8').split('\n').find((l) => l.startsWith('EXERCISE '))!;
    const ex = JSON.parse(line.slice('EXERCISE '.length)) as {
      descriptor: { transport: string; ctap1: boolean; wink: boolean };
      getInfo: string;
      makeCredential: { length: number; status: number; last: number; statuses: number[] };
      cancel: string;
      afterCancel: string;
    };
    expect(ex.descriptor).toMatchObject({ transport: 'hid', ctap1: false, wink: true });
    expect(ex.getInfo).toBe('00a1018168' + Buffer.from('FIDO_2_0').toString('hex'));
    expect(ex.makeCredential).toMatchObject({ length: 1000, status: 0, last: 999 & 0xff });
    expect(ex.makeCredential.statuses).toContain(2);
    expect(ex.cancel).toBe('rejected: cancel');
    expect(ex.afterCancel).toBe(ex.getInfo);
  });

  it('unplugging the key fails the pending and the queued request with DEVICE_REMOVED, and discovery removes it', () => {
    checkPassed(r, 'exercise-hanging');
    const line = readFileSync(join(r!.share, 'exercise.txt'), 'utf8').split('\n').find((l) => l.startsWith('EXERCISE '))!;
    const ex = JSON.parse(line.slice('EXERCISE '.length)) as {
      descriptor: { id: string };
      unplug: { pending: { name: string; code: string }; queued: { name: string; code: string }; failMs: number; removedEvent: string; gone: boolean };
    };
    expect(ex.unplug.pending).toMatchObject({ name: 'HidDeviceRemovedError', code: 'DEVICE_REMOVED' });
    expect(ex.unplug.queued).toMatchObject({ name: 'HidDeviceRemovedError', code: 'DEVICE_REMOVED' });
    expect(ex.unplug.removedEvent).toBe(ex.descriptor.id);
    expect(ex.unplug.gone).toBe(true);
  });
});
