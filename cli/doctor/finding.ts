/**
 * What a `keytunnel doctor` check reports: one finding per line, `ok` / `warn` / `FAIL` / `n/a`, the problem in a
 * few words and, unless all is well, the command or step that fixes it.
 */
export type FindingStatus = 'ok' | 'warn' | 'FAIL' | 'n/a';

export interface Finding {
  /** Short check name ("uhid", "hidraw", "usbip", "trust", "peer", "clock", "elevation", ...). */
  readonly check: string;
  readonly status: FindingStatus;
  readonly message: string;
  /** How to fix it (absent for ok / n/a). */
  readonly fix?: string;
}

export const ok = (check: string, message: string): Finding => ({ check, status: 'ok', message });
export const notApplicable = (check: string, message: string): Finding => ({ check, status: 'n/a', message });
export const warn = (check: string, message: string, fix: string): Finding => ({ check, status: 'warn', message, fix });
export const fail = (check: string, message: string, fix: string): Finding => ({ check, status: 'FAIL', message, fix });

/** One line per finding: `FAIL  uhid       /dev/uhid is missing — fix: sudo modprobe uhid`. */
export function formatFinding(f: Finding): string {
  const fix = f.fix !== undefined ? ` — fix: ${f.fix}` : '';
  return `${f.status.padEnd(4)}  ${f.check.padEnd(9)}  ${f.message}${fix}`;
}

/** Exit status: 1 when something FAILed (or, with strict, warned), else 0. */
export function exitCodeFor(findings: readonly Finding[], strict = false): number {
  return findings.some((f) => f.status === 'FAIL' || (strict && f.status === 'warn')) ? 1 : 0;
}
