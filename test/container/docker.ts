/**
 * The container tests' harness: a Docker engine (Debian's docker.io, installed by scripts/provision.sh; dockerd is
 * started here when none answers, with no bridge and no iptables rules: containers use host networking only, so
 * nothing reaches private-range addresses), a local base image made without any registry (debootstrap
 * --variant=minbase of Debian bookworm + this machine's node binary, `docker import`), and the keytunnel image
 * built from the repository's Dockerfile with `--build-arg BASE=<that image>` and no network for the build.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, rmSync, copyFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = fileURLToPath(new URL('../..', import.meta.url));
/** Tagged by node version: a new node binary makes a new base. */
export const BASE_IMAGE = `keytunnel-test-base:node-${process.versions.node}`;
export const TEST_IMAGE = 'keytunnel:test';
const DEBIAN_MIRROR = 'http://deb.debian.org/debian';
const SUITE = 'bookworm';

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function run(cmd: string, args: readonly string[], options: { input?: Buffer; timeoutMs?: number } = {}): Run {
  const r = spawnSync(cmd, args, { input: options.input, timeout: options.timeoutMs ?? 600_000, maxBuffer: 64 * 1024 * 1024 });
  return { code: r.status, stdout: r.stdout?.toString() ?? '', stderr: r.stderr?.toString() ?? (r.error?.message ?? '') };
}

function must(cmd: string, args: readonly string[], timeoutMs?: number): string {
  const r = run(cmd, args, { timeoutMs });
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.code}):\n${r.stderr.slice(-4000)}`);
  return r.stdout;
}

const dockerAnswers = (): boolean => run('docker', ['info', '--format', '{{.ServerVersion}}'], { timeoutMs: 20_000 }).code === 0;

/** A Docker engine that answers; dockerd is started (detached, left running for later runs) when none does. */
export async function ensureDocker(): Promise<void> {
  if (dockerAnswers()) return;
  if (!existsSync('/usr/sbin/dockerd')) throw new Error('no Docker engine: install docker.io (scripts/provision.sh does)');
  const log = openSync(join(tmpdir(), 'keytunnel-test-dockerd.log'), 'a');
  // No default bridge, no iptables: containers run with --network host only.
  const child = spawn('/usr/sbin/dockerd', ['--bridge=none', '--iptables=false', '--ip6tables=false'], {
    detached: true,
    stdio: ['ignore', log, log],
  });
  child.unref();
  const deadline = Date.now() + 60_000;
  while (!dockerAnswers()) {
    if (Date.now() > deadline) throw new Error(`dockerd did not answer within 60 s (see ${join(tmpdir(), 'keytunnel-test-dockerd.log')})`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

const imageExists = (tag: string): boolean => run('docker', ['image', 'inspect', tag], { timeoutMs: 20_000 }).code === 0;

/**
 * The local stand-in for node:20-bookworm-slim: Debian bookworm minbase from Debian's archive plus this
 * machine's node binary at /usr/local/bin/node (where the official image has it). Built once per node version.
 */
export function ensureBaseImage(): string {
  if (imageExists(BASE_IMAGE)) return BASE_IMAGE;
  const dir = mkdtempSync(join(tmpdir(), 'keytunnel-base-'));
  const rootfs = join(dir, 'rootfs');
  try {
    must('debootstrap', ['--variant=minbase', SUITE, rootfs, DEBIAN_MIRROR], 900_000);
    copyFileSync(process.execPath, join(rootfs, 'usr/local/bin/node'));
    chmodSync(join(rootfs, 'usr/local/bin/node'), 0o755);
    rmSync(join(rootfs, 'var/cache/apt/archives'), { recursive: true, force: true });
    const tar = spawnSync('tar', ['-C', rootfs, '-c', '.'], { maxBuffer: 2 * 1024 * 1024 * 1024 });
    if (tar.status !== 0) throw new Error(`tar failed: ${tar.stderr.toString()}`);
    const imported = run('docker', ['import', '--change', 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', '-', BASE_IMAGE], { input: tar.stdout });
    if (imported.code !== 0) throw new Error(`docker import failed: ${imported.stderr}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return BASE_IMAGE;
}

/** Builds the repository's Dockerfile on the local base, with no network during the build. */
export function buildTestImage(): string {
  must('docker', ['build', '--network', 'none', '--build-arg', `BASE=${ensureBaseImage()}`, '-t', TEST_IMAGE, REPO], 900_000);
  // The build stage (sources + node_modules) stays behind as an untagged image: drop it, the cache does not need it.
  run('docker', ['image', 'prune', '--force', '--filter', 'label=keytunnel.stage=build'], { timeoutMs: 120_000 });
  return TEST_IMAGE;
}

/** `docker image inspect` of one field (Go template). */
export function inspectImage(tag: string, format: string): string {
  return must('docker', ['image', 'inspect', '--format', format, tag]).trim();
}
