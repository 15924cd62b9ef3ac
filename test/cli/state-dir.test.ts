/** The default state directory per platform (XDG on Linux, Application Support on macOS, APPDATA on Windows). */
import { expect, it } from 'vitest';
import { defaultStateDir } from '../../cli/state-dir.ts';

it('follows each platform convention', () => {
  expect(defaultStateDir({}, 'linux', '/home/u')).toBe('/home/u/.config/keytunnel');
  expect(defaultStateDir({ XDG_CONFIG_HOME: '/x/cfg' }, 'linux', '/home/u')).toBe('/x/cfg/keytunnel');
  expect(defaultStateDir({ XDG_CONFIG_HOME: 'relative' }, 'linux', '/home/u')).toBe('/home/u/.config/keytunnel');
  expect(defaultStateDir({}, 'darwin', '/Users/u')).toBe('/Users/u/Library/Application Support/keytunnel');
  expect(defaultStateDir({ APPDATA: 'C:\\Users\\u\\AppData\\Roaming' }, 'win32', 'C:\\Users\\u')).toBe(
    'C:\\Users\\u\\AppData\\Roaming\\keytunnel',
  );
  expect(defaultStateDir({}, 'win32', 'C:\\Users\\u')).toBe('C:\\Users\\u\\AppData\\Roaming\\keytunnel');
});
