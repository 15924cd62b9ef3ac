/**
 * Guest scripts report each check as a line "CHECK <name> ok|FAIL"; these helpers turn one guest boot into many
 * vitest assertions, each failing with the whole guest console (so a red run says why).
 */
import type { GuestResult } from './harness.ts';

/** Shell prelude for guest scripts: `check NAME CMD...` runs CMD and prints the CHECK line. */
export const CHECK_PRELUDE = `
R="$KEYTUNNEL_REPO"; F="$R/test/vm/fixtures"; TSX_LOADER="$R/node_modules/tsx/dist/loader.mjs"
check() { name=$1; shift; if "$@"; then echo "CHECK $name ok"; else echo "CHECK $name FAIL (exit $?)"; fi; }
wait_for() { i=0; while ! [ -e "$1" ]; do i=$((i+1)); [ $i -ge \${2:-200} ] && return 1; sleep 0.1; done; }
# attempts N CMD...: run CMD up to N times, saying which attempts failed (for measurements that the emulator's
# scheduling can spoil, e.g. a uhid message longer than the kernel's 32-report output queue).
attempts() { n=$1; shift; a=1; while [ $a -le $n ]; do "$@" && return 0; echo "attempt $a of $n failed (exit $?)"; a=$((a+1)); done; return 1; }
`;

export function checkPassed(r: GuestResult | undefined, name: string): void {
  if (!r) throw new Error('the guest did not run');
  if (!new RegExp(`^CHECK ${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} ok\\r?$`, 'm').test(r.console)) {
    throw new Error(`guest check "${name}" did not pass (guest exit code ${r.code}); guest console:\n${r.console}`);
  }
}

/** The checks fixtures/libfido2_checks.sh reports (prefixed with its TAG), in order. */
export const LIBFIDO2_CHECKS = [
  'getinfo',
  'getinfo-aaguid',
  'wrap-make',
  'wrap-verify',
  'wrap-verify-not-rk',
  'wrap-assert',
  'wrap-assert-verify',
  'wrap-assert-up',
  'wrap-assert-up-false',
  'wrap-assert-up-false-verify',
  'hs-make',
  'hs-verify',
  'hs-assert',
  'hs-assert-verify',
  'rk-make',
  'rk-verify',
  'rk-assert',
  'rk-assert-verify',
  'wrong-rp-fails',
  'set-pin',
  'getinfo-clientpin-set',
  'pin-wrap-make',
  'pin-wrap-verify',
  'pin-wrap-no-uv',
  'pin-wrap-assert',
  'pin-wrap-assert-verify-uv',
  'pin-rk-make',
  'pin-rk-verify',
  'pin-rk-assert',
  'pin-rk-assert-verify',
  'wrong-pin-fails',
  'credman-rps',
] as const;

/** The checks fixtures/fido2_webauthn.py reports (prefixed with its TAG). */
export const WEBAUTHN_CHECKS = ['list-devices', 'getinfo', 'register-authenticate-nonrk', 'register-authenticate-rk'] as const;
