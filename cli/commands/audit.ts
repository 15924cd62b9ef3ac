/**
 * `keytunnel audit [--since …] [--gateway NAME] [--json]`: the agent's audit log (`<state-dir>/audit.log` and its
 * rotated files audit.log.4 … audit.log.1, read oldest first; one JSON line per CTAP request from a gateway) as a
 * readable table.
 *
 * The RP IDs, user names and gateway names in it came from VMs, so every printed field goes through displayText
 * (control, bidi and format characters escaped, length bounded): a user name cannot move the cursor, clear the
 * screen or start a new, forged row. For requests the policy refused, the RP ID and user name are only what the
 * VM claimed, and the table says so ("(claimed)"). `--json` prints the lines with the same characters \u-escaped.
 */
import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Argv, CommandModule } from 'yargs';
import { displayJson, displayText } from '../../agent/display-text.ts';
import { AUDIT_FILE, auditFiles, type AuditRecord } from '../../agent/policy/audit.ts';
import { resolveStateDir, stateDirOption } from '../state-dir.ts';

export type AuditLine = AuditRecord & { time: string };

const UNITS: Record<string, number> = { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3 };

/** Marker after an RP ID or user name that nothing checked (the policy refused the request before). */
export const CLAIMED_MARK = ' (claimed)';

/** `--since`: a duration back from now ("90s", "15m", "2h", "7d") or an ISO date/time. */
export function parseSince(text: string, now = Date.now()): number {
  const m = /^(\d+)([smhd])$/.exec(text.trim());
  if (m) return now - Number(m[1]) * UNITS[m[2]!]!;
  const t = Date.parse(text);
  if (Number.isNaN(t)) throw new Error(`--since ${JSON.stringify(text)}: use a duration like 15m, 2h, 7d or an ISO date`);
  return t;
}

const str = (value: unknown): string | undefined =>
  typeof value === 'string' ? value : value === undefined || value === null ? undefined : String(value);

/** One parsed line, or undefined when it is not an audit record (a torn line after a crash, a `dropped` note). */
function asAuditLine(value: unknown): AuditLine | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const v = value as Record<string, unknown>;
  if (typeof v.time !== 'string' || typeof v.gateway !== 'string' || typeof v.decision !== 'string') return undefined;
  return v as unknown as AuditLine;
}

async function readOne(path: string, filter: { since?: number; gateway?: string }, into: AuditLine[]): Promise<void> {
  const input = createReadStream(path, 'utf8');
  const rl = createInterface({ input, crlfDelay: Infinity });
  try {
    for await (const text of rl) {
      if (!text.trim()) continue;
      let line: AuditLine | undefined;
      try {
        line = asAuditLine(JSON.parse(text));
      } catch {
        continue; // a torn last line after a crash
      }
      if (line === undefined) continue;
      if (filter.since !== undefined && !(Date.parse(line.time) >= filter.since)) continue;
      if (filter.gateway !== undefined && line.gatewayName !== filter.gateway && !line.gateway.startsWith(filter.gateway)) continue;
      into.push(line);
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
}

/** The records of the audit log at `path` and its rotated files, oldest first. */
export async function readAudit(path: string, filter: { since?: number; gateway?: string }): Promise<AuditLine[]> {
  const lines: AuditLine[] = [];
  for (const file of auditFiles(path)) await readOne(file, filter, lines);
  return lines;
}

/** Column bounds (code points) for the table. */
const WIDTH = { time: 24, gateway: 40, authenticator: 40, command: 32, rp: 80, user: 64, decision: 160, status: 8, ms: 10 };

/** True when the RP ID / user name of a line were only claimed by the VM (the policy refused the request). */
export function isClaimed(line: AuditLine): boolean {
  return line.claimed === true || line.decision === 'refused-by-policy';
}

export function formatAuditTable(lines: readonly AuditLine[]): string {
  const header = ['TIME', 'GATEWAY', 'AUTHENTICATOR', 'COMMAND', 'RP', 'USER', 'DECISION', 'STATUS', 'MS'];
  const show = (value: unknown, max: number): string => {
    const s = str(value);
    return s === undefined || s === '' ? '-' : displayText(s, max);
  };
  const rows = lines.map((l) => {
    const mark = isClaimed(l) ? CLAIMED_MARK : '';
    const rpHash = str(l.rpIdHash);
    const rp = str(l.rpId) !== undefined ? show(l.rpId, WIDTH.rp) + mark : rpHash ? `#${displayText(rpHash, 12)}` : '-';
    const user = str(l.user) !== undefined ? show(l.user, WIDTH.user) + mark : '-';
    const reason = str(l.reason);
    return [
      show(String(l.time).replace('T', ' ').replace(/\.\d+Z$/, 'Z'), WIDTH.time),
      show(l.gatewayName, WIDTH.gateway),
      show(l.authenticator, WIDTH.authenticator),
      show(l.command, WIDTH.command),
      rp,
      user,
      show(`${str(l.decision)}${reason ? ` (${reason})` : ''}`, WIDTH.decision),
      show(l.status, WIDTH.status),
      show(l.durationMs, WIDTH.ms),
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => Array.from(r[i]!).length)));
  const render = (cells: string[]) => cells.map((c, i) => c + ' '.repeat(widths[i]! - Array.from(c).length)).join('  ').trimEnd();
  return [render(header), ...rows.map(render)].join('\n') + '\n';
}

/** `--json`: one line per record, the same JSON value with every unsafe character \u-escaped. */
export function formatAuditJson(lines: readonly AuditLine[]): string {
  return lines.map((l) => `${displayJson(l)}\n`).join('');
}

const command: CommandModule = {
  command: 'audit',
  describe: "Show the agent's audit log: every CTAP request from a gateway and what was decided",
  builder: (yargs: Argv) =>
    yargs.options({
      since: { type: 'string', describe: 'Only entries newer than this: a duration (15m, 2h, 7d) or an ISO date' },
      gateway: { type: 'string', describe: 'Only this gateway (policy name or fingerprint prefix)' },
      json: { type: 'boolean', default: false, describe: 'Print the raw JSON lines' },
      ...stateDirOption,
    }),
  handler: async (args) => {
    const path = join(resolveStateDir(args['state-dir'] as string | undefined), AUDIT_FILE);
    const since = args.since !== undefined ? parseSince(args.since as string) : undefined;
    const lines = await readAudit(path, { since, gateway: args.gateway as string | undefined });
    if (args.json) process.stdout.write(formatAuditJson(lines));
    else if (lines.length === 0) console.error(`no audit entries in ${path}`);
    else process.stdout.write(formatAuditTable(lines));
  },
};

export default command;
