/**
 * `keytunnel audit [--since …] [--gateway NAME]`: the agent's audit log (`<state-dir>/audit.log`, one JSON line
 * per CTAP request from a gateway) as a readable table.
 */
import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Argv, CommandModule } from 'yargs';
import { AUDIT_FILE, type AuditRecord } from '../../agent/policy/audit.ts';
import { resolveStateDir, stateDirOption } from '../state-dir.ts';

export type AuditLine = AuditRecord & { time: string };

const UNITS: Record<string, number> = { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3 };

/** `--since`: a duration back from now ("90s", "15m", "2h", "7d") or an ISO date/time. */
export function parseSince(text: string, now = Date.now()): number {
  const m = /^(\d+)([smhd])$/.exec(text.trim());
  if (m) return now - Number(m[1]) * UNITS[m[2]!]!;
  const t = Date.parse(text);
  if (Number.isNaN(t)) throw new Error(`--since ${JSON.stringify(text)}: use a duration like 15m, 2h, 7d or an ISO date`);
  return t;
}

export async function readAudit(path: string, filter: { since?: number; gateway?: string }): Promise<AuditLine[]> {
  const lines: AuditLine[] = [];
  const input = createReadStream(path, 'utf8');
  const rl = createInterface({ input, crlfDelay: Infinity });
  try {
    for await (const text of rl) {
      if (!text.trim()) continue;
      let line: AuditLine;
      try {
        line = JSON.parse(text) as AuditLine;
      } catch {
        continue; // a torn last line after a crash
      }
      if (filter.since !== undefined && Date.parse(line.time) < filter.since) continue;
      if (filter.gateway !== undefined && line.gatewayName !== filter.gateway && !line.gateway.startsWith(filter.gateway)) continue;
      lines.push(line);
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return lines;
}

export function formatAuditTable(lines: readonly AuditLine[]): string {
  const header = ['TIME', 'GATEWAY', 'AUTHENTICATOR', 'COMMAND', 'RP', 'USER', 'DECISION', 'STATUS', 'MS'];
  const rows = lines.map((l) => [
    l.time.replace('T', ' ').replace(/\.\d+Z$/, 'Z'),
    l.gatewayName,
    l.authenticator,
    l.command,
    l.rpId ?? (l.rpIdHash ? `#${l.rpIdHash.slice(0, 12)}…` : '-'),
    l.user ?? '-',
    l.decision + (l.reason ? ` (${l.reason})` : ''),
    l.status ?? '-',
    String(l.durationMs),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const render = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  return [render(header), ...rows.map(render)].join('\n') + '\n';
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
    if (args.json) for (const l of lines) console.log(JSON.stringify(l));
    else if (lines.length === 0) console.error(`no audit entries in ${path}`);
    else process.stdout.write(formatAuditTable(lines));
  },
};

export default command;
