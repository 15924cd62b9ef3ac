/**
 * Tiers are chosen by file name (test/tiers.ts): the VM and Wine harnesses refuse to work for a test file that is
 * not named for their tier, so a test that boots a guest or starts Wine cannot silently join the unit tier.
 */
import { describe, expect, it } from 'vitest';
import { requireTier, TIER_SUFFIX } from './tiers.ts';
import { runInGuest } from './vm/harness.ts';
import { ensureWine } from './windows/wine.ts';

describe('test tiers by file name', () => {
  it('accepts a file named for its tier and code outside vitest', () => {
    expect(() => requireTier('vm', '/repo/test/vm/uhid.vm.test.ts')).not.toThrow();
    expect(() => requireTier('windows', '/repo/test/windows/soft.wine.test.ts')).not.toThrow();
    expect(() => requireTier('vm', undefined)).not.toThrow();
  });

  it('refuses a unit-named file and a file of the other tier, naming the suffix to use', () => {
    expect(() => requireTier('vm', '/repo/test/relay/vm.test.ts')).toThrow(
      'vm.test.ts boots the qemu guest (test/vm/harness.ts), so it belongs to the vm tier: rename it to *.vm.test.ts',
    );
    expect(() => requireTier('windows', '/repo/test/windows/soft.vm.test.ts')).toThrow(`rename it to *${TIER_SUFFIX.windows}`);
    expect(() => requireTier('vm', '/repo/test/x.wine.test.ts')).toThrow(`rename it to *${TIER_SUFFIX.vm}`);
    // Both sequential tiers may boot the guest; a unit-named file may not.
    expect(() => requireTier(['vm', 'windows'], '/repo/test/windows/exe.wine.test.ts')).not.toThrow();
    expect(() => requireTier(['vm', 'windows'], '/repo/test/x.test.ts')).toThrow(`rename it to *${TIER_SUFFIX.vm}`);
  });

  it('the VM harness refuses to boot a guest for this unit-tier file', async () => {
    await expect(runInGuest('exit 0', { timeoutMs: 1_000 })).rejects.toThrow(
      /^tiers\.test\.ts boots the qemu guest .* rename it to \*\.vm\.test\.ts/,
    );
  });

  it('the Wine harness refuses to provision Wine for this unit-tier file', async () => {
    await expect(ensureWine({ cacheDir: '/nonexistent/never-made' })).rejects.toThrow(
      /^tiers\.test\.ts runs Windows programs under Wine .* rename it to \*\.wine\.test\.ts/,
    );
  });
});
