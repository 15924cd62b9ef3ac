/**
 * `npm run bench:exe`: sizes and start-up times of the single executables in dist/exe/ (build them first with
 * `npm run build:exe`). Start-up = `<exe> --version` to exit, median of N runs:
 *   - Linux: the executable directly;
 *   - Windows under Wine (test/windows/wine.ts, prefix "bench-exe"): cold = no wineserver running (each run
 *     after `wineserver -k`), warm = a persistent wineserver (`wineserver -p`) already up.
 * Prints one JSON object (docs/bench/exe.md quotes it).
 */
import { spawnSync } from 'node:child_process';
import { openSync, closeSync, statSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { ensureWine, WINE64, WINESERVER } from '../test/windows/wine.ts';

const ROOT = join(import.meta.dirname, '..');
const EXE = join(ROOT, 'dist', 'exe');
const RUNS = Number(process.env.BENCH_RUNS ?? 7);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return Math.round(s[Math.floor(s.length / 2)]! * 10) / 10;
}

function timed(cmd: string, args: string[], env: NodeJS.ProcessEnv): number {
  const null_ = openSync('/dev/null', 'r+');
  try {
    const t = performance.now();
    const r = spawnSync(cmd, args, { env, stdio: [null_, null_, null_] }); // files, not pipes (Wine)
    const ms = performance.now() - t;
    if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}`);
    return ms;
  } finally {
    closeSync(null_);
  }
}

const linux = join(EXE, 'keytunnel-linux-x64');
const win = join(EXE, 'keytunnel-win-x64.exe');
const linuxMs = Array.from({ length: RUNS }, () => timed(linux, ['--version'], { PATH: '/nonexistent', HOME: process.env.HOME }));

const wine = await ensureWine({ prefixName: 'bench-exe' });
const cold: number[] = [];
for (let i = 0; i < RUNS; i++) {
  spawnSync(WINESERVER, ['-k'], { env: wine.env, stdio: 'ignore' });
  spawnSync(WINESERVER, ['-w'], { env: wine.env, stdio: 'ignore' });
  cold.push(timed(WINE64, [win, '--version'], wine.env));
}
spawnSync(WINESERVER, ['-k'], { env: wine.env, stdio: 'ignore' });
spawnSync(WINESERVER, ['-p'], { env: wine.env, stdio: 'ignore' });
timed(WINE64, [win, '--version'], wine.env); // first run after the server starts: not counted
const warm = Array.from({ length: RUNS }, () => timed(WINE64, [win, '--version'], wine.env));
spawnSync(WINESERVER, ['-k'], { env: wine.env, stdio: 'ignore' });

console.log(
  JSON.stringify(
    {
      date: new Date().toISOString(),
      node: process.version,
      cpus: cpus().length,
      loadavg1: Math.round(loadavg()[0]! * 10) / 10,
      runs: RUNS,
      sizeBytes: { linux: statSync(linux).size, win: statSync(win).size },
      versionMs: { linux: median(linuxMs), wineCold: median(cold), wineWarm: median(warm) },
      samplesMs: { linux: linuxMs.map(Math.round), wineCold: cold.map(Math.round), wineWarm: warm.map(Math.round) },
    },
    null,
    2,
  ),
);
