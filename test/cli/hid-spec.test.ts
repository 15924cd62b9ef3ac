/** `--hid` parsing: the three faces, defaults, IPv6, and clear refusals (bad syntax, ports, non-loopback hosts). */
import { describe, expect, it } from 'vitest';
import { HidSpecError, USBIP_DEFAULT_PORT, formatHidSpec, parseHidSpec } from '../../cli/hid-spec.ts';

describe('parseHidSpec', () => {
  it('parses loopback, uhid and usbip', () => {
    expect(parseHidSpec('loopback:127.0.0.1:0')).toEqual({ kind: 'loopback', host: '127.0.0.1', port: 0 });
    expect(parseHidSpec('loopback:127.0.0.2:8123')).toEqual({ kind: 'loopback', host: '127.0.0.2', port: 8123 });
    expect(parseHidSpec('loopback:localhost:5')).toEqual({ kind: 'loopback', host: '127.0.0.1', port: 5 });
    expect(parseHidSpec('loopback:[::1]:65535')).toEqual({ kind: 'loopback', host: '::1', port: 65535 });
    expect(parseHidSpec('uhid')).toEqual({ kind: 'uhid' });
    expect(parseHidSpec('UHID')).toEqual({ kind: 'uhid' });
    expect(parseHidSpec('usbip')).toEqual({ kind: 'usbip', host: '127.0.0.1', port: USBIP_DEFAULT_PORT });
    expect(parseHidSpec('usbip:127.0.0.1:3241')).toEqual({ kind: 'usbip', host: '127.0.0.1', port: 3241 });
  });

  it('round-trips through formatHidSpec', () => {
    for (const s of ['loopback:127.0.0.1:0', 'loopback:[::1]:80', 'uhid', 'usbip:127.0.0.1:3240']) {
      expect(formatHidSpec(parseHidSpec(s))).toBe(s);
    }
  });

  it.each([
    ['', /expected loopback:HOST:PORT, uhid, or usbip/],
    ['hidraw', /expected loopback:HOST:PORT, uhid, or usbip/],
    ['loopback', /loopback needs an address/],
    ['loopback:', /loopback needs an address/],
    ['loopback:127.0.0.1', /expected HOST:PORT/],
    ['loopback:127.0.0.1:', /PORT must be a number/],
    ['loopback:127.0.0.1:65536', /PORT must be a number from 0 to 65535/],
    ['loopback:127.0.0.1:-1', /PORT must be a number/],
    ['loopback:127.0.0.1:80x', /PORT must be a number/],
    ['loopback:0.0.0.0:80', /refusing to listen on 0.0.0.0.*loopback/],
    ['loopback:192.168.1.5:80', /refusing to listen on 192.168.1.5/],
    ['loopback:[::]:80', /refusing to listen on ::/],
    ['loopback:example.com:80', /HOST must be a loopback IP address/],
    ['loopback:::1:80', /expected HOST:PORT/],
    ['uhid:foo', /uhid takes no address/],
    ['usbip:10.0.0.1:3240', /refusing to listen on 10.0.0.1/],
  ])('refuses %j', (spec, message) => {
    expect(() => parseHidSpec(spec)).toThrow(HidSpecError);
    expect(() => parseHidSpec(spec)).toThrow(message);
  });

  it('listens beyond loopback only with the explicit opt-in (still an IP literal)', () => {
    expect(parseHidSpec('loopback:0.0.0.0:8090', { anyAddress: true })).toEqual({ kind: 'loopback', host: '0.0.0.0', port: 8090 });
    expect(parseHidSpec('loopback:[::]:8090', { anyAddress: true })).toEqual({ kind: 'loopback', host: '::', port: 8090 });
    expect(() => parseHidSpec('loopback:example.com:8090', { anyAddress: true })).toThrow(/loopback IP address/);
    expect(() => parseHidSpec('loopback:0.0.0.0:8090', { anyAddress: false })).toThrow(/refusing to listen on 0.0.0.0/);
  });
});
