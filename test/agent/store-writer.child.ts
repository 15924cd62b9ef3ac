/**
 * Child process for the kill -9 test of the file store (test/agent/store-crash.test.ts): opens the store given
 * in argv, continues from the counter it holds, and saves ever-increasing counters in a loop, printing
 * "saved N" after each save resolved (i.e. once N is durable). Stdout on a pipe is synchronous on Linux, so a
 * printed line was really emitted before any later kill.
 */
import { FileStateStore } from '../../agent/authenticators/soft/store-file.ts';

const [path] = process.argv.slice(2);
const passphrase = process.env.KEYTUNNEL_PASSPHRASE ?? '';
const store = await FileStateStore.open({ path, passphrase });
const previous = await store.load();
let counter = previous ? Number(JSON.parse(Buffer.from(previous).toString('utf8')).counter) : 0;
process.stdout.write(`opened ${counter}\n`);
// Some bulk so a write is not a single page: the kill lands inside writes, not only between them.
const padding = 'x'.repeat(6000 + Math.floor(Math.random() * 6000));
for (;;) {
  counter++;
  await store.save(Buffer.from(JSON.stringify({ counter, padding }), 'utf8'));
  process.stdout.write(`saved ${counter}\n`);
}
