/**
 * Child process of the passwd crash test (passkeys.test.ts): changes the store passphrase and, once the
 * re-encrypted image is durable under its temp name (before the rename that makes it the store), says so and
 * waits to be SIGKILLed.
 */
import { passkeysPasswd } from '../../cli/commands/passkeys.ts';

const [stateDir] = process.argv.slice(2);
await passkeysPasswd(
  {
    stateDir: stateDir!,
    profile: 'default',
    beforeCommit: async () => {
      process.stdout.write('new image durable\n');
      setInterval(() => {}, 1000); // keep the process alive: the parent kills us here
      await new Promise(() => {});
    },
  },
  { out: () => {}, err: (l) => process.stderr.write(`${l}\n`) },
);
