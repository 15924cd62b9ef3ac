import { describe, expect, it } from 'vitest';
import { platformNotifier, withDesktopNotification } from '../../agent/presence-notify.ts';
import type { PresenceRequest } from '../../agent/authenticators/soft/ports.ts';

describe('desktop notification for presence prompts', () => {
  const request: PresenceRequest = {
    action: 'getAssertion',
    rpId: 'login.microsoft.com',
    userName: 'alice@contoso.com',
    origin: { gatewayName: 'customer-a', gatewayFingerprint: '3f:a1:9c' },
  };

  it('announces the request, naming the VM, RP and user, and leaves the decision to the prompt', async () => {
    const shown: string[] = [];
    const presence = withDesktopNotification({ confirm: async () => false }, (title, body) => shown.push(`${title}|${body}`));
    expect(await presence.confirm(request, new AbortController().signal)).toBe(false);
    expect(shown).toEqual([
      'keytunnel: approve?|customer-a (fp 3f:a1:9c) wants to sign in to login.microsoft.com as alice@contoso.com — answer in the keytunnel terminal',
    ]);
  });

  it('a failing notifier never blocks the prompt', async () => {
    const presence = withDesktopNotification({ confirm: async () => true }, () => {
      throw new Error('no display');
    });
    expect(await presence.confirm(request, new AbortController().signal)).toBe(true);
  });

  it('knows a notifier per desktop platform; a missing program is ignored', () => {
    expect(platformNotifier('linux')).toBeTypeOf('function');
    expect(platformNotifier('darwin')).toBeTypeOf('function');
    expect(platformNotifier('win32')).toBeTypeOf('function');
    expect(platformNotifier('aix')).toBeUndefined();
    // notify-send is not installed on this machine: starting it must not throw or crash the process.
    expect(() => platformNotifier('linux')!('t', 'b')).not.toThrow();
  });
});
