/**
 * Headless Chromium in the qemu guest, for the browser end-to-end tests (test/vm/browser-*.vm.test.ts): a shell
 * prelude defining `ceremony NAME PORT [chromium|shell] [WATCHDOG_MS]`, which starts the sample relying party
 * (rp-server.ts) on http://localhost:PORT, opens its page in a fresh headless Chromium (or
 * chromium-headless-shell), waits until the server has the page's verdict (or its deadline passed), then stops
 * the browser. The verdict lands in the share as `verdict-NAME.json`, the browser's FIDO/HID log as
 * `chrome-NAME.log`.
 *
 * Flags are the ones measured in docs/platform-notes.md ("Chromium in the guest"): --no-sandbox (the
 * sandbox cannot work in the chroot), no GPU/QUIC/first-run/background networking, a fresh --user-data-dir per
 * run, and the device_event_log at verbosity 1 so a failure shows what reached the device. Without udevd Chromium
 * only sees HID devices that exist before its first WebAuthn request, so every ceremony starts a fresh browser
 * after the device is there.
 *
 * Two watchdogs: the page aborts each ceremony after WATCHDOG_MS (default PAGE_CEREMONY_TIMEOUT_MS; a failed
 * ceremony can leave the promise pending), and the server gives up after RP_DEADLINE_MS (Chromium may not even
 * load the page when the machine is overloaded; the verdict then says `deadline: true`).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RpVerdict } from './rp-server.ts';

export const CHROMIUM = '/usr/lib/chromium/chromium';
/**
 * Debian's chromium-headless-shell: the same engine (Blink, content/, device/fido) without Chrome's UI layer.
 * Chrome parks a failed WebAuthn request on its error dialog (ChromeAuthenticatorRequestDelegate::
 * DoesBlockRequestOnFailure) until the user closes it, which headless Chrome cannot; content/'s default
 * delegate does not block, so here a refusal reaches the page at once, as the NotAllowedError a user gets
 * after closing Chrome's dialog.
 */
export const CHROMIUM_HEADLESS_SHELL = '/usr/lib/chromium/chromium-headless-shell';
export const PAGE_CEREMONY_TIMEOUT_MS = 30_000;
/** Chromium starts in 10–12 s under TCG on an idle machine; leave room for a busy one. */
export const RP_DEADLINE_MS = 150_000;

export const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
  '--enable-logging=stderr',
  "--vmodule='device_event_log*=1'",
].join(' ');

/** Needs CHECK_PRELUDE (test/vm/checks.ts) first: uses $R and $TSX_LOADER. */
export const CHROMIUM_PRELUDE = `
start_rp() {  # NAME PORT: start the relying party; 0 once it listens, 1 if it died first
  node --import "$TSX_LOADER" "$R/test/browser/rp-server.ts" "$2" "verdict-$1.json" ${RP_DEADLINE_MS} > "rp-$1.log" 2>&1 &
  rp=$!
  i=0
  while ! grep -q '^listening' "rp-$1.log" 2>/dev/null; do
    kill -0 $rp 2>/dev/null || return 1
    i=$((i+1)); [ $i -ge 900 ] && return 1; sleep 0.1
  done
  echo "[$1] relying party up on localhost:$2 (after $i polls)"
}
ceremony() {
  name=$1; port=$2
  # tsx's WASM lexer has been seen to die with "memory access out of bounds" under TCG: retry a dead start.
  for attempt in 1 2 3; do
    start_rp "$name" "$port" && break
    echo "[$name] relying party did not start (attempt $attempt):"; cat "rp-$name.log"; kill $rp 2>/dev/null
  done
  case "\${3:-chromium}" in shell) browser=${CHROMIUM_HEADLESS_SHELL};; *) browser=${CHROMIUM};; esac
  echo "[$name] $browser"
  $browser ${CHROMIUM_FLAGS} --user-data-dir="/tmp/chrome-$name" "http://localhost:$port/?timeout=\${4:-${PAGE_CEREMONY_TIMEOUT_MS}}" > "chrome-$name.log" 2>&1 &
  ch=$!
  wait $rp; echo "[$name] relying party exited with $?"
  kill -TERM $ch 2>/dev/null; wait $ch 2>/dev/null
  grep -E 'FIDO: |HID: ' "chrome-$name.log" | sed -e 's/^.*device_event_log_impl.cc:[0-9]*\\] //' | cut -c1-300 | tail -40
}
`;

/** Read a ceremony's verdict from the guest's share. */
export function readVerdict(share: string, name: string): RpVerdict {
  return JSON.parse(readFileSync(join(share, `verdict-${name}.json`), 'utf8')) as RpVerdict;
}
