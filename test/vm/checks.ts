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
`;

export function checkPassed(r: GuestResult | undefined, name: string): void {
  if (!r) throw new Error('the guest did not run');
  if (!new RegExp(`^CHECK ${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} ok\\r?$`, 'm').test(r.console)) {
    throw new Error(`guest check "${name}" did not pass (guest exit code ${r.code}); guest console:\n${r.console}`);
  }
}
