/**
 * `keytunnel passkeys list|rm|passwd|backup|restore|export|import`: the soft authenticator's passkeys in view —
 * per VM scope and RP, deleted, backed up, moved in and out in FIDO's Credential Exchange Format (issue 16).
 *
 * Edge code only: it composes the encrypted store (agent/authenticators/soft/store-file.ts, its lock and its
 * state codec) with the per-gateway names (gateways.json, trusted-peers) and adds no CTAP logic. Reading
 * commands (list, backup, export) read the last saved state and work beside a running agent; writing commands
 * (rm, passwd, restore, import) take the store's lock and refuse while `keytunnel agent --soft` or `keytunnel
 * soft` has the profile open. The logic lives in cli/passkeys/.
 */
import { randomBytes } from 'node:crypto';
import { link, open, readFile, stat, unlink } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import type { Argv, CommandModule } from 'yargs';
import { DEFAULT_PROFILE } from '../../agent/authenticators/soft/store-file.ts';
import { deserializeState, serializeState, SoftStateError } from '../../agent/authenticators/soft/state.ts';
import { displayJson } from '../../agent/display-text.ts';
import { terminalSafe } from '../../agent/authenticators/soft/presence-tty.ts';
import { obtainPassphrase, PASSPHRASE_ENV, readHidden, type PassphraseInput } from '../../agent/passphrase.ts';
import { resolveStateDir, stateDirOption } from '../state-dir.ts';
import { CXF_SPEC, buildCxfDocument, exportable, importedCredential, MAX_CXF_FILE_BYTES, parseCxf } from '../passkeys/cxf.ts';
import { GatewayNames, SHARED_SCOPE_NAME } from '../passkeys/gateway-names.ts';
import { credentialMatches, findByIdPrefix, formatTable, NON_DISCOVERABLE_NOTE, passkeyRow, passkeyRows, type ListFilter } from '../passkeys/listing.ts';
import { mergeBackup } from '../passkeys/merge.ts';
import { isSealed, seal, unseal } from '../passkeys/sealed-file.ts';
import { PasskeysError, readState, storeExists, storePath, withLockedState, type StoreLocation } from '../passkeys/store-access.ts';

export const BACKUP_PASSPHRASE_ENV = 'KEYTUNNEL_BACKUP_PASSPHRASE';
export const NEW_PASSPHRASE_ENV = 'KEYTUNNEL_NEW_PASSPHRASE';

export interface PasskeysIo {
  /** Results (stdout). */
  out(line: string): void;
  /** Warnings and notes (stderr). */
  err(line: string): void;
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly input?: PassphraseInput;
  readonly output?: NodeJS.WritableStream;
  readonly now?: () => number;
}

export interface CommonOptions extends StoreLocation {}

function envOf(io: PasskeysIo): Readonly<Record<string, string | undefined>> {
  return io.env ?? process.env;
}

async function storePassphrase(where: StoreLocation, io: PasskeysIo, creating = false): Promise<string> {
  return obtainPassphrase({ creating, what: storePath(where), env: envOf(io), input: io.input, output: io.output });
}

/** A passphrase from `envName`, else asked on the terminal (twice when `twice`). */
async function otherPassphrase(envName: string, what: string, twice: boolean, io: PasskeysIo): Promise<string> {
  const fromEnv = envOf(io)[envName];
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  const input = io.input ?? process.stdin;
  const output = io.output ?? process.stderr;
  if (!input.isTTY) throw new PasskeysError(`${what} is needed: set ${envName}, or run in a terminal to be asked`);
  const first = await readHidden(input, output, `keytunnel: ${what}: `);
  if (first === '') throw new PasskeysError(`${what} is empty`);
  if (twice && (await readHidden(input, output, 'keytunnel: repeat it: ')) !== first) {
    throw new PasskeysError('the two passphrases differ; nothing was changed');
  }
  return first;
}

/** Writes a new file (0600) atomically and never over an existing one: temp file, fsync, link(2) to the name. */
async function writeNewFile(path: string, data: Uint8Array | string): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
  const fh = await open(tmp, 'wx', 0o600);
  try {
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await link(tmp, path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new PasskeysError(`${path} exists: remove it or choose another name`);
    throw err;
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
}

/** Reads an input file, bounded. */
async function readInput(path: string, max: number): Promise<Uint8Array> {
  let size: number;
  try {
    size = (await stat(path)).size;
  } catch (err) {
    throw new PasskeysError(`cannot read ${path}: ${(err as Error).message}`);
  }
  if (size > max) throw new PasskeysError(`${path} is larger than ${max} bytes`);
  return new Uint8Array(await readFile(path));
}

/** --gateway NAME / --shared as a scope filter. `viewOf`: the set the gateway's VM sees (its policy may say shared). */
function scopeFilter(names: GatewayNames, gateway: string | undefined, shared: boolean | undefined, viewOf: boolean): ListFilter['scopes'] {
  if (gateway !== undefined && shared) throw new PasskeysError('give --gateway NAME or --shared, not both');
  if (shared) return new Set([undefined]);
  if (gateway === undefined) return undefined;
  const fp = names.resolve(gateway);
  if (viewOf && names.policyScope(fp) === 'shared') return undefined;
  return new Set([fp]);
}

const plural = (n: number, what: string): string => `${n} ${what}${n === 1 ? '' : 's'}`;

// ------------------------------------------------------------------------------------------------ list

export interface ListOptions extends CommonOptions {
  readonly gateway?: string;
  readonly shared?: boolean;
  readonly rp?: string;
  readonly json?: boolean;
}

export async function passkeysList(options: ListOptions, io: PasskeysIo): Promise<void> {
  const names = await GatewayNames.load(options.stateDir);
  const scopes = scopeFilter(names, options.gateway, options.shared, true);
  const state = await readState(options, await storePassphrase(options, io));
  const rows = passkeyRows(state, names, { ...(scopes ? { scopes } : {}), ...(options.rp !== undefined ? { rpId: options.rp } : {}) });
  if (options.json) {
    io.out(displayJson(rows));
    return;
  }
  if (options.gateway !== undefined && scopes === undefined) {
    io.err(`note: ${terminalSafe(options.gateway, 40)}'s policy scope is "shared": its VM sees every credential, so all are listed`);
  }
  if (rows.length === 0) io.out('no passkeys');
  else for (const line of formatTable(rows)) io.out(line);
  io.err(NON_DISCOVERABLE_NOTE);
}

// ------------------------------------------------------------------------------------------------ rm

export interface RmOptions extends CommonOptions {
  readonly ids: readonly string[];
  readonly yes?: boolean;
}

async function confirm(io: PasskeysIo, question: string): Promise<boolean> {
  const input = io.input ?? process.stdin;
  const output = io.output ?? process.stderr;
  if (!input.isTTY) throw new PasskeysError('no terminal to confirm on: pass --yes to delete without asking');
  const rl = createInterface({ input, output, terminal: false });
  try {
    output.write(question);
    const answer = await new Promise<string>((resolve) => rl.once('line', resolve));
    return /^y(es)?$/i.test(answer.trim());
  } finally {
    rl.close();
  }
}

export async function passkeysRm(options: RmOptions, io: PasskeysIo): Promise<void> {
  if (options.ids.length === 0) throw new PasskeysError('name at least one credential ID (see keytunnel passkeys list)');
  const names = await GatewayNames.load(options.stateDir);
  const passphrase = await storePassphrase(options, io);
  await withLockedState(options, passphrase, false, async (session) => {
    const victims = new Set<(typeof session.state.credentials)[number]>();
    for (const id of options.ids) {
      const found = findByIdPrefix(session.state, id);
      const shown = terminalSafe(id, 48);
      if (found.length === 0) throw new PasskeysError(`no passkey with ID ${shown}; nothing was deleted`);
      if (found.length > 1) throw new PasskeysError(`ID ${shown} names ${found.length} passkeys: give more of it; nothing was deleted`);
      victims.add(found[0]!);
    }
    const rows = [...victims].map((c) => passkeyRow(c, names));
    for (const line of formatTable(rows)) io.err(line);
    if (!options.yes && !(await confirm(io, `Delete ${plural(rows.length, 'passkey')}? The relying parties will not be told. [y/N] `))) {
      io.out('nothing was deleted');
      return;
    }
    session.state.credentials = session.state.credentials.filter((c) => !victims.has(c));
    await session.save();
    io.out(`deleted ${plural(rows.length, 'passkey')}`);
  });
}

// ------------------------------------------------------------------------------------------------ passwd

export interface PasswdOptions extends CommonOptions {
  /** Test hook: runs after the re-encrypted store is durable under its temp name, before the rename. */
  readonly beforeCommit?: () => Promise<void>;
}

export async function passkeysPasswd(options: PasswdOptions, io: PasskeysIo): Promise<void> {
  const passphrase = await storePassphrase(options, io);
  await withLockedState(options, passphrase, false, async (session) => {
    const next = await otherPassphrase(NEW_PASSPHRASE_ENV, `new passphrase for ${storePath(options)}`, true, io);
    await session.store.changePassphrase(next, options.beforeCommit ? { beforeCommit: options.beforeCommit } : {});
  });
  io.out(`changed the passphrase of ${storePath(options)}`);
}

// ------------------------------------------------------------------------------------------------ backup / restore

export interface BackupOptions extends CommonOptions {
  readonly out: string;
}

export async function passkeysBackup(options: BackupOptions, io: PasskeysIo): Promise<void> {
  const state = await readState(options, await storePassphrase(options, io));
  const passphrase = await otherPassphrase(BACKUP_PASSPHRASE_ENV, `backup passphrase for ${options.out}`, true, io);
  const sealed = await seal('keytunnel-backup', serializeState(state), passphrase, (io.now ?? Date.now)());
  await writeNewFile(options.out, sealed);
  io.out(
    `wrote ${options.out} (0600): the whole soft authenticator — ${plural(state.credentials.length, 'discoverable credential')}, ` +
      `the wrapping secret of the non-discoverable ones, counters${state.pin ? ', PIN' : ''} — encrypted under the backup passphrase`,
  );
}

export interface RestoreOptions extends CommonOptions {
  readonly file: string;
  readonly discoverableOnly?: boolean;
}

export async function passkeysRestore(options: RestoreOptions, io: PasskeysIo): Promise<void> {
  const bytes = await readInput(options.file, 64 * 1024 * 1024);
  if (!isSealed(bytes)) throw new PasskeysError(`${options.file} is not a keytunnel backup`);
  const passphrase = await otherPassphrase(BACKUP_PASSPHRASE_ENV, `backup passphrase for ${options.file}`, false, io);
  const unsealed = await unseal(bytes, passphrase, options.file);
  if (unsealed.kind !== 'keytunnel-backup') throw new PasskeysError(`${options.file} is an encrypted CXF export: use keytunnel passkeys import`);
  let backup;
  try {
    backup = deserializeState(unsealed.data);
  } catch (err) {
    if (err instanceof SoftStateError) throw new PasskeysError(`${options.file}: ${err.message}`);
    throw err;
  }
  const storePass = await storePassphrase(options, io, !(await storeExists(options)));
  const report = await withLockedState(options, storePass, true, async (session) => {
    const merged = mergeBackup(session.state, backup, { discoverableOnly: options.discoverableOnly === true });
    await session.save(merged.state);
    return merged.report;
  });
  const how =
    report.mode === 'fresh'
      ? 'into an empty store: every credential of the backup works here, non-discoverable ones too'
      : report.mode === 'same-secret'
        ? 'merged (same authenticator): higher counters kept'
        : 'merged the discoverable credentials only (--discoverable-only)';
  io.out(
    `restored ${options.file} ${how}; ${report.added} added, ${report.updated} updated, ${report.unchanged} already present` +
      (report.pin === 'kept' ? "; this store's PIN kept" : report.pin === 'from-backup' ? '; PIN from the backup' : ''),
  );
}

// ------------------------------------------------------------------------------------------------ export / import

export interface ExportOptions extends CommonOptions {
  readonly out: string;
  readonly format?: string;
  readonly gateway?: string;
  readonly shared?: boolean;
  readonly rp?: string;
  readonly encrypt?: boolean;
}

export async function passkeysExport(options: ExportOptions, io: PasskeysIo): Promise<void> {
  if ((options.format ?? 'cxf') !== 'cxf') throw new PasskeysError(`--format ${terminalSafe(options.format ?? '', 16)}: only cxf is supported`);
  const names = await GatewayNames.load(options.stateDir);
  const scopes = scopeFilter(names, options.gateway, options.shared, false);
  const state = await readState(options, await storePassphrase(options, io));
  const filter: ListFilter = { ...(scopes ? { scopes } : {}), ...(options.rp !== undefined ? { rpId: options.rp } : {}) };
  const selected = state.credentials.filter((c) => credentialMatches(c, filter));
  const chosen = selected.filter(exportable);
  const skipped = selected.filter((c) => !exportable(c));
  for (const c of skipped) {
    const r = passkeyRow(c, names);
    io.err(
      `skipped ${terminalSafe(r.rpId, 40)} ${terminalSafe(r.userName ?? '-', 32)} (${terminalSafe(r.gateway, 24)}, ${r.credentialId.slice(0, 12)}): ` +
        `signature counter ${r.signCount} — CXF v1.0 leaves passkeys with a non-zero counter out (use backup/restore to move them between keytunnel installations)`,
    );
  }
  if (chosen.length === 0) throw new PasskeysError(`nothing to export (${plural(selected.length, 'passkey')} selected, none with a zero counter)`);
  const now = (io.now ?? Date.now)();
  const json = `${JSON.stringify(buildCxfDocument(chosen, now, randomBytes(16)), null, 2)}\n`;
  const data = options.encrypt
    ? await seal('cxf', Buffer.from(json, 'utf8'), await otherPassphrase(BACKUP_PASSPHRASE_ENV, `passphrase for ${options.out}`, true, io), now)
    : json;
  await writeNewFile(options.out, data);
  if (!options.encrypt) {
    io.err(`warning: ${options.out} holds the private keys of ${plural(chosen.length, 'passkey')} unencrypted (file mode 0600); import it and delete it, or use --encrypt`);
  }
  io.out(`exported ${plural(chosen.length, 'passkey')} to ${options.out} (${CXF_SPEC}${options.encrypt ? ', encrypted' : ''})`);
}

export interface ImportOptions extends CommonOptions {
  readonly file: string;
  readonly gateway?: string;
  readonly shared?: boolean;
}

export async function passkeysImport(options: ImportOptions, io: PasskeysIo): Promise<void> {
  const names = await GatewayNames.load(options.stateDir);
  if ((options.gateway === undefined) === (options.shared !== true)) {
    throw new PasskeysError('name the scope of the imported passkeys: --gateway NAME (that VM) or --shared (gateways whose policy scope is shared)');
  }
  const scope = options.gateway !== undefined ? names.resolve(options.gateway) : undefined;
  let bytes = await readInput(options.file, MAX_CXF_FILE_BYTES + 1024);
  if (isSealed(bytes)) {
    const unsealed = await unseal(bytes, await otherPassphrase(BACKUP_PASSPHRASE_ENV, `passphrase for ${options.file}`, false, io), options.file);
    if (unsealed.kind !== 'cxf') throw new PasskeysError(`${options.file} is a keytunnel backup: use keytunnel passkeys restore`);
    bytes = unsealed.data;
  }
  let checked;
  try {
    checked = parseCxf(Buffer.from(bytes).toString('utf8'));
  } catch (err) {
    throw new PasskeysError(`${options.file}: ${(err as Error).message}; nothing was imported`);
  }
  if (checked.passkeys.length === 0) throw new PasskeysError(`${options.file} holds no passkeys; nothing was imported`);
  const storePass = await storePassphrase(options, io, !(await storeExists(options)));
  const now = (io.now ?? Date.now)();
  const [added, present] = await withLockedState(options, storePass, true, async (session) => {
    const have = new Set(session.state.credentials.map((c) => Buffer.from(c.id).toString('latin1')));
    let n = 0;
    let dup = 0;
    for (const p of checked.passkeys) {
      const key = Buffer.from(p.credentialId).toString('latin1');
      if (have.has(key)) {
        dup++;
        continue;
      }
      have.add(key);
      session.state.credentials.push(importedCredential(p, scope, session.state.nextSeq++, now));
      n++;
    }
    if (n > 0) await session.save();
    return [n, dup] as const;
  });
  if (checked.otherCredentials > 0) io.err(`skipped ${plural(checked.otherCredentials, 'credential')} that are not passkeys (passwords, notes, …)`);
  if (checked.ignored.length > 0) io.err(`ignored what this authenticator cannot keep: ${checked.ignored.slice(0, 5).join(', ')}`);
  io.out(
    `imported ${plural(added, 'passkey')} into ${scope === undefined ? SHARED_SCOPE_NAME : terminalSafe(names.nameOf(scope), 40)}` +
      (present > 0 ? ` (${present} already present, skipped)` : '') +
      '; their signature counter stays 0 (CXF v1.0)',
  );
}

// ------------------------------------------------------------------------------------------------ yargs

const profileOption = {
  profile: {
    type: 'string',
    default: DEFAULT_PROFILE,
    describe: 'Name of the soft authenticator; its credentials live in <state-dir>/soft-<profile>.kts',
  },
} as const;

function common(args: Record<string, unknown>): CommonOptions {
  return { stateDir: resolveStateDir(args['state-dir'] as string | undefined), profile: String(args['profile'] ?? DEFAULT_PROFILE) };
}

const consoleIo: PasskeysIo = { out: (l) => console.log(l), err: (l) => console.error(l) };

const scopeOptions = {
  gateway: { type: 'string', describe: 'Only the passkeys of this VM (the gateway\'s trusted name or fingerprint)' },
  shared: { type: 'boolean', describe: 'Only the shared (unscoped) passkeys' },
  rp: { type: 'string', describe: 'Only the passkeys of this RP ID' },
} as const;

const command: CommandModule = {
  command: 'passkeys <action>',
  describe: "The soft authenticator's passkeys: list per VM and RP, delete, change the passphrase, back up, move in and out (CXF)",
  builder: (yargs: Argv) =>
    yargs
      .command({
        command: 'list',
        describe: 'List the discoverable credentials (passkeys): RP, user, VM scope, created, last used, counter',
        builder: (y: Argv) =>
          y
            .options({ ...scopeOptions, json: { type: 'boolean', describe: 'Print a JSON array' }, ...stateDirOption, ...profileOption })
            .epilogue(NON_DISCOVERABLE_NOTE),
        handler: (a) =>
          passkeysList(
            { ...common(a), gateway: a['gateway'] as string | undefined, shared: a['shared'] as boolean | undefined, rp: a['rp'] as string | undefined, json: a['json'] === true },
            consoleIo,
          ),
      })
      .command({
        command: 'rm <ids..>',
        describe: 'Delete passkeys by credential ID (or a unique prefix of at least 6 characters, as `list` shows)',
        builder: (y: Argv) => y.options({ yes: { type: 'boolean', alias: 'y', describe: 'Do not ask for confirmation' }, ...stateDirOption, ...profileOption }),
        handler: (a) => passkeysRm({ ...common(a), ids: (a['ids'] as unknown[]).map(String), yes: a['yes'] === true }, consoleIo),
      })
      .command({
        command: 'passwd',
        describe: `Change the store passphrase (the new one from ${NEW_PASSPHRASE_ENV} or asked twice); atomic`,
        builder: (y: Argv) => y.options({ ...stateDirOption, ...profileOption }),
        handler: (a) => passkeysPasswd(common(a), consoleIo),
      })
      .command({
        command: 'backup',
        describe: `Write the whole soft authenticator, encrypted under a backup passphrase (${BACKUP_PASSPHRASE_ENV} or asked)`,
        builder: (y: Argv) => y.options({ out: { type: 'string', demandOption: true, describe: 'The backup file (must not exist)' }, ...stateDirOption, ...profileOption }),
        handler: (a) => passkeysBackup({ ...common(a), out: String(a['out']) }, consoleIo),
      })
      .command({
        command: 'restore <file>',
        describe: 'Restore a backup: into an empty store everything, else merge (higher counters kept, never overwritten)',
        builder: (y: Argv) =>
          y.options({
            'discoverable-only': {
              type: 'boolean',
              describe: "Into a store with credentials of its own: merge only the backup's discoverable credentials",
            },
            ...stateDirOption,
            ...profileOption,
          }),
        handler: (a) => passkeysRestore({ ...common(a), file: String(a['file']), discoverableOnly: a['discoverableOnly'] === true }, consoleIo),
      })
      .command({
        command: 'export',
        describe: 'Export passkeys in the FIDO Credential Exchange Format (CXF v1.0) — the file holds private keys',
        builder: (y: Argv) =>
          y.options({
            format: { type: 'string', choices: ['cxf'], default: 'cxf', describe: 'Exchange format' },
            out: { type: 'string', demandOption: true, describe: 'The file to write (0600; must not exist)' },
            ...scopeOptions,
            encrypt: { type: 'boolean', describe: `Encrypt it like a backup (${BACKUP_PASSPHRASE_ENV} or asked)` },
            ...stateDirOption,
            ...profileOption,
          }),
        handler: (a) =>
          passkeysExport(
            {
              ...common(a),
              out: String(a['out']),
              format: String(a['format'] ?? 'cxf'),
              gateway: a['gateway'] as string | undefined,
              shared: a['shared'] as boolean | undefined,
              rp: a['rp'] as string | undefined,
              encrypt: a['encrypt'] === true,
            },
            consoleIo,
          ),
      })
      .command({
        command: 'import <file>',
        describe: 'Import the passkeys of a CXF file (plain or --encrypt-ed) into one VM scope or the shared one',
        builder: (y: Argv) =>
          y.options({
            gateway: { type: 'string', describe: 'Make them visible to this VM only (trusted name or fingerprint)' },
            shared: { type: 'boolean', describe: 'Unscoped: visible to gateways whose policy scope is shared (and to keytunnel soft)' },
            ...stateDirOption,
            ...profileOption,
          }),
        handler: (a) =>
          passkeysImport({ ...common(a), file: String(a['file']), gateway: a['gateway'] as string | undefined, shared: a['shared'] as boolean | undefined }, consoleIo),
      })
      .demandCommand(1, 'Name an action: list, rm, passwd, backup, restore, export or import')
      .epilogue(
        `${NON_DISCOVERABLE_NOTE} The store passphrase comes from ${PASSPHRASE_ENV} (else a prompt). list, backup and ` +
          'export read the last saved state and work while the agent runs; rm, passwd, restore and import need the ' +
          'store to themselves and refuse while `keytunnel agent --soft` or `keytunnel soft` has it open. Passkeys ' +
          'made here count signatures per credential; CXF v1.0 lets only passkeys with a zero counter be exported, ' +
          'and imported ones keep a counter of 0 for ever.',
      ),
  handler: () => {},
};

export default command;
