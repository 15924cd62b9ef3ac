/**
 * The guest harness itself: the kernel has the interfaces the HID tests need, the checkout and the share are
 * visible (from any checkout location), exit codes pass.
 */
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { expectGuestOk, guestHookTimeout, runInGuest } from './harness.ts';

describe('qemu guest harness', () => {
  it('boots a kernel with uhid, hidraw and vhci-hcd and runs the host node and FIDO tools', async () => {
    const r = await runInGuest(
      `set -e
[ -c /dev/uhid ]; echo "uhid ok"
ls /sys/bus/platform/devices | grep -q vhci_hcd; echo "vhci ok"
grep -q hidraw /proc/devices; echo "hidraw ok"
[ -f "$KEYTUNNEL_REPO/package.json" ]; echo "checkout ok"
node -e 'process.stdout.write("node " + process.version + "\\n")'
command -v fido2-token usbip
/usr/bin/python3 -c 'import fido2; print("python-fido2", fido2.__version__)'
echo from-guest > out.txt
`,
      { timeoutMs: 120_000, keepShare: true },
    );
    expectGuestOk(r);
    expect(r.console).toContain('uhid ok');
    expect(r.console).toContain('vhci ok');
    expect(r.console).toContain('hidraw ok');
    // The checkout is visible at its host path wherever it is (under /tmp too: scripts/vm/init.sh).
    expect(r.console).toContain('checkout ok');
    expect(r.console).toContain(`node ${process.version}`);
    expect(readFileSync(join(r.share, 'out.txt'), 'utf8')).toBe('from-guest\n');
    rmSync(r.share, { recursive: true, force: true });
  }, guestHookTimeout(120_000));

  it("returns the script's exit code", async () => {
    const r = await runInGuest('echo failing on purpose; exit 3', { timeoutMs: 120_000 });
    expect(r.code).toBe(3);
    expect(r.console).toContain('failing on purpose');
    rmSync(r.share, { recursive: true, force: true });
  }, guestHookTimeout(120_000));

  it('reports 99 when the guest never finishes in time', async () => {
    const r = await runInGuest('echo hanging; sleep 600', { timeoutMs: 15_000 });
    expect(r.code).toBe(99);
    rmSync(r.share, { recursive: true, force: true });
  }, guestHookTimeout(15_000));
});
