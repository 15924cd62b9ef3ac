/**
 * The encrypted file store: round trips, the typed errors (wrong passphrase, corruption of every header field,
 * truncation, a newer version, a KDF memory bomb), file format and permissions, crash-leftover cleanup, the
 * profile lock, save serialisation, the per-platform durability rule (directory fsync on POSIX, none on
 * Windows) and the minimum length of a new store's passphrase.
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FileStateStore, StoreError, profileStorePath, syncDirectory } from '../../agent/authenticators/soft/store-file.ts';
import {
  DEFAULT_SCRYPT,
  HEADER_LENGTH,
  MIN_NEW_PASSPHRASE_LENGTH,
  MAX_STATE_LENGTH,
  NONCE_LENGTH,
  SALT_LENGTH,
  STORE_MAGIC,
  deriveKey,
  encryptState,
  newSalt,
} from '../../agent/authenticators/soft/store-format.ts';

const PASS = 'correct horse battery staple';
let dir: string;
let path: string;
const opened: FileStateStore[] = [];

async function openStore(passphrase = PASS, p = path): Promise<FileStateStore> {
  const store = await FileStateStore.open({ path: p, passphrase });
  opened.push(store);
  return store;
}

async function expectStoreError(promise: Promise<unknown>, code: string): Promise<StoreError> {
  const err = await promise.then(
    () => {
      throw new Error('expected a StoreError');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(StoreError);
  expect((err as StoreError).code).toBe(code);
  return err as StoreError;
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kt-store-'));
  path = profileStorePath(join(dir, 'state'), 'default');
});
afterEach(async () => {
  for (const s of opened.splice(0)) await s.close();
  await rm(dir, { recursive: true, force: true });
});

describe('FileStateStore', () => {
  it('answers null before the first save, then round-trips across reopen', async () => {
    const store = await openStore();
    expect(await store.load()).toBeNull();
    const state = new Uint8Array([1, 2, 3, 250, 0, 7]);
    await store.save(state);
    expect(await store.load()).toEqual(state);
    await store.close();
    const again = await openStore();
    expect(await again.load()).toEqual(state);
  });

  it('names the file soft-<profile>.kts, creates the dir 0700 and the file 0600', async () => {
    expect(path).toBe(join(dir, 'state', 'soft-default.kts'));
    const store = await openStore();
    await store.save(new Uint8Array([9]));
    expect((await stat(join(dir, 'state'))).mode & 0o777).toBe(0o700);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
  });

  it('rejects unsafe profile names', () => {
    for (const bad of ['', '../x', 'a/b', '.hidden', '-x', 'x'.repeat(65), 'a\nb']) {
      expect(() => profileStorePath(dir, bad)).toThrow(StoreError);
    }
    expect(profileStorePath(dir, 'work.laptop_2-b')).toBe(join(dir, 'soft-work.laptop_2-b.kts'));
  });

  it('writes magic, version, scrypt N=2^15 r=8 p=1, a 16-byte salt and a fresh nonce per write', async () => {
    const store = await openStore();
    const state = new TextEncoder().encode('the same state twice');
    await store.save(state);
    const a = await readFile(path);
    await store.save(state);
    const b = await readFile(path);
    expect(a.subarray(0, 8).equals(STORE_MAGIC)).toBe(true);
    expect(a[8]).toBe(1); // format version
    expect(a[9]).toBe(1); // scrypt
    expect(a[10]).toBe(15); // log2 N
    expect(a.readUInt32BE(11)).toBe(8);
    expect(a.readUInt32BE(15)).toBe(1);
    const saltAt = 19;
    const nonceAt = saltAt + SALT_LENGTH;
    expect(a.subarray(saltAt, nonceAt).equals(b.subarray(saltAt, nonceAt))).toBe(true); // key derived once
    expect(a.subarray(nonceAt, nonceAt + NONCE_LENGTH).equals(b.subarray(nonceAt, nonceAt + NONCE_LENGTH))).toBe(false);
    expect(a.subarray(HEADER_LENGTH).equals(b.subarray(HEADER_LENGTH))).toBe(false);
    expect(a.length).toBe(HEADER_LENGTH + state.length + 16);
    // The plaintext does not appear in the file.
    expect(a.includes(Buffer.from('the same state'))).toBe(false);
  });

  it('keeps no copy of the passphrase on the store object', async () => {
    const store = await openStore();
    const seen = JSON.stringify(Object.entries(store), (_k, v: unknown) =>
      v instanceof Uint8Array ? Buffer.from(v).toString('latin1') : v,
    );
    expect(seen.includes(PASS)).toBe(false);
  });

  it('a wrong passphrase is a typed error naming the file, and the file is left untouched', async () => {
    const store = await openStore();
    await store.save(new Uint8Array([1, 2, 3]));
    await store.close();
    const before = await readFile(path);
    const err = await expectStoreError(FileStateStore.open({ path, passphrase: 'wrong' }), 'wrong-passphrase-or-corrupted');
    expect(err.message).toBe(`wrong passphrase or corrupted store ${path}`);
    expect(err.message.includes('wrong')).toBe(true);
    expect((await readFile(path)).equals(before)).toBe(true);
    // The failed open released the lock: the right passphrase still opens it.
    expect(await (await openStore()).load()).toEqual(new Uint8Array([1, 2, 3]));
  });

  it('detects a flipped bit anywhere in the authenticated header, ciphertext or tag', async () => {
    const store = await openStore();
    await store.save(new TextEncoder().encode('some state worth protecting'));
    await store.close();
    const good = await readFile(path);
    // Salt, nonce, ciphertext and tag bytes: authentication fails.
    for (const at of [19, 19 + SALT_LENGTH, HEADER_LENGTH, HEADER_LENGTH + 5, good.length - 1]) {
      const bad = Buffer.from(good);
      bad[at] ^= 0x01;
      await writeFile(path, bad);
      await expectStoreError(FileStateStore.open({ path, passphrase: PASS }), 'wrong-passphrase-or-corrupted');
    }
    // The r parameter changed (still in range): a different key, so authentication fails too.
    const badR = Buffer.from(good);
    badR.writeUInt32BE(9, 11);
    await writeFile(path, badR);
    await expectStoreError(FileStateStore.open({ path, passphrase: PASS }), 'wrong-passphrase-or-corrupted');
  });

  it('classifies bad magic, truncation, a KDF memory bomb and a newer version', async () => {
    const store = await openStore();
    await store.save(new Uint8Array(40));
    await store.close();
    const good = await readFile(path);
    const cases: Array<[Buffer, string]> = [];
    const magic = Buffer.from(good);
    magic[0] ^= 0xff;
    cases.push([magic, 'corrupted']);
    cases.push([good.subarray(0, HEADER_LENGTH + 3), 'corrupted']);
    cases.push([Buffer.alloc(0), 'corrupted']);
    const bomb = Buffer.from(good);
    bomb[10] = 40; // N = 2^40 would need terabytes
    cases.push([bomb, 'corrupted']);
    const weak = Buffer.from(good);
    weak[10] = 4; // weaker than the floor: refused, not silently accepted
    cases.push([weak, 'corrupted']);
    const kdfId = Buffer.from(good);
    kdfId[9] = 2;
    cases.push([kdfId, 'corrupted']);
    const newer = Buffer.from(good);
    newer[8] = 2;
    cases.push([newer, 'unsupported-version']);
    for (const [bytes, code] of cases) {
      await writeFile(path, bytes);
      const err = await expectStoreError(FileStateStore.open({ path, passphrase: PASS }), code);
      expect(err.message).toContain(path);
    }
  });

  it('a file changed under an open store is reported by load, never treated as empty', async () => {
    const store = await openStore();
    await store.save(new Uint8Array([5, 5, 5]));
    const bytes = await readFile(path);
    bytes[bytes.length - 2] ^= 0x80;
    await writeFile(path, bytes);
    await expectStoreError(store.load(), 'wrong-passphrase-or-corrupted');
  });

  it('removes temp files left by a crashed writer and ignores their content', async () => {
    const store = await openStore();
    await store.save(new Uint8Array([1]));
    await store.close();
    await writeFile(`${path}.tmp-999999-abcdef`, 'half a write');
    await writeFile(`${path}.tmp-1-000000`, Buffer.alloc(0));
    const again = await openStore();
    expect(await again.load()).toEqual(new Uint8Array([1]));
    const names = await readdir(join(dir, 'state'));
    expect(names.filter((n) => n.includes('.tmp-'))).toEqual([]);
  });

  it('locks the profile: a second open fails with in-use until the first closes', async () => {
    const first = await openStore();
    const err = await expectStoreError(FileStateStore.open({ path, passphrase: PASS }), 'in-use');
    expect(err.message).toContain(path);
    await first.close();
    const second = await openStore();
    expect(await second.load()).toBeNull();
  });

  it('refuses a lock held by another live process and takes over a stale one', async () => {
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
    try {
      await (await openStore()).close(); // creates the directory
      await writeFile(`${path}.lock`, `${child.pid}\n`);
      const err = await expectStoreError(FileStateStore.open({ path, passphrase: PASS }), 'in-use');
      expect(err.message).toContain(String(child.pid));
    } finally {
      child.kill('SIGKILL');
      await new Promise((resolve) => child.once('exit', resolve));
    }
    // Its owner is gone now: the lock is stale and the open takes it over.
    const store = await openStore();
    expect(await readFile(`${path}.lock`, 'utf8')).toBe(`${process.pid}\n`);
    await store.close();
    await expect(stat(`${path}.lock`)).rejects.toThrow();
  });

  it('serialises concurrent saves: every save resolves and the newest state wins', async () => {
    const store = await openStore();
    const saves: Array<Promise<void>> = [];
    const buf = new Uint8Array(4);
    for (let i = 0; i < 200; i++) {
      new DataView(buf.buffer).setUint32(0, i);
      saves.push(store.save(buf)); // the same buffer reused: the store must copy it
    }
    await Promise.all(saves);
    expect(await store.load()).toEqual(new Uint8Array([0, 0, 0, 199]));
    const names = await readdir(join(dir, 'state'));
    expect(names.sort()).toEqual(['soft-default.kts', 'soft-default.kts.lock']);
  });

  it('close waits for pending saves; load and save after close are typed errors', async () => {
    const store = await openStore();
    const pending = store.save(new Uint8Array([42]));
    await store.close();
    await pending;
    await expectStoreError(store.load(), 'closed');
    await expectStoreError(store.save(new Uint8Array([1])), 'closed');
    expect(await (await openStore()).load()).toEqual(new Uint8Array([42]));
  });

  it('refuses a state larger than the bound', async () => {
    const store = await openStore();
    await expectStoreError(store.save(new Uint8Array(MAX_STATE_LENGTH + 1)), 'too-large');
    expect(await store.load()).toBeNull();
  });
});

/** What Node on Windows does when asked to fsync a directory handle (issue 17). */
function windowsDirSyncError(dir: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`EPERM: operation not permitted, fsync '${dir}'`), { code: 'EPERM', syscall: 'fsync' });
}

describe('FileStateStore durability per platform', () => {
  it('POSIX: every write fsyncs the store directory after the rename', async () => {
    const synced: string[] = [];
    const store = await FileStateStore.open({
      path,
      passphrase: PASS,
      platform: 'linux',
      syncDir: async (d) => {
        synced.push(d);
        await syncDirectory(d);
      },
    });
    opened.push(store);
    await store.save(new Uint8Array([1]));
    await store.save(new Uint8Array([2]));
    expect(synced).toEqual([join(dir, 'state'), join(dir, 'state')]);
  });

  it('win32: no directory fsync (Windows refuses it with EPERM); the store is created and saves are durable by rename', async () => {
    const synced: string[] = [];
    const refuse = async (d: string): Promise<void> => {
      synced.push(d);
      throw windowsDirSyncError(d);
    };
    const store = await FileStateStore.open({ path, passphrase: PASS, platform: 'win32', syncDir: refuse });
    opened.push(store);
    await store.save(new Uint8Array([7, 7]));
    await store.save(new Uint8Array([8, 8]));
    expect(synced).toEqual([]);
    await store.close();
    expect(await (await openStore()).load()).toEqual(new Uint8Array([8, 8]));
    expect((await readdir(join(dir, 'state'))).filter((n) => n.includes('.tmp-'))).toEqual([]);
  });

  it('POSIX: a directory that cannot be flushed fails the save with a typed io error (the old behaviour on Windows)', async () => {
    const store = await FileStateStore.open({
      path,
      passphrase: PASS,
      platform: 'linux',
      syncDir: async (d) => {
        throw windowsDirSyncError(d);
      },
    });
    opened.push(store);
    const err = await expectStoreError(store.save(new Uint8Array([1])), 'io');
    expect(err.message).toBe(`cannot sync directory of ${path}: EPERM: operation not permitted, fsync '${join(dir, 'state')}'`);
  });
});

describe('FileStateStore new-store passphrase length', () => {
  it(`refuses to create a store with a passphrase shorter than ${MIN_NEW_PASSPHRASE_LENGTH} characters`, async () => {
    for (const short of ['', 'x', '1234567', '\u{1F511}'.repeat(7), 'e\u0301'.repeat(3) + 'ab']) {
      const err = await expectStoreError(FileStateStore.open({ path, passphrase: short }), 'weak-passphrase');
      expect(err.message).toBe(`refusing to create ${path}: the passphrase must be at least 8 characters long`);
    }
    // Nothing was created, and the lock was released each time.
    expect((await readdir(join(dir, 'state'))).sort()).toEqual([]);
    const store = await openStore('12345678');
    await store.save(new Uint8Array([1]));
    await store.close();
    // Characters are code points after NFC: 8 astral characters (16 UTF-16 units) are enough, 7 are not.
    await (await FileStateStore.open({ path: join(dir, 'state', 'soft-k.kts'), passphrase: '\u{1F511}'.repeat(8) })).close();
  });

  it('still opens an existing store made with a short passphrase (before this rule)', async () => {
    await mkdir(join(dir, 'state'), { recursive: true });
    const salt = newSalt();
    const key = await deriveKey('abc', salt, DEFAULT_SCRYPT);
    await writeFile(path, encryptState(new Uint8Array([5, 6, 7]), key, DEFAULT_SCRYPT, salt), { mode: 0o600 });
    const store = await openStore('abc');
    expect(await store.load()).toEqual(new Uint8Array([5, 6, 7]));
    await store.save(new Uint8Array([8]));
    await store.close();
    expect(await (await openStore('abc')).load()).toEqual(new Uint8Array([8]));
  });
});
