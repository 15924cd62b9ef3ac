/**
 * The small pure pieces of the agent/gateway commands: --listen/--connect parsing, the gateway-device marker the
 * agent's hardware discovery skips (the faces' slot → port rule: test/device/faces/factory.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { GATEWAY_DEVICE_SERIAL, isGatewayDevice, parseEndpoint, RelaySetupError, trustList } from '../../cli/options.ts';

describe('parseEndpoint', () => {
  it('accepts HOST:PORT and [IPv6]:PORT', () => {
    expect(parseEndpoint('127.0.0.1:7400', '--listen', true)).toEqual({ host: '127.0.0.1', port: 7400 });
    expect(parseEndpoint(' vm.example.com:443 ', '--connect', false)).toEqual({ host: 'vm.example.com', port: 443 });
    expect(parseEndpoint('[::1]:9', '--connect', false)).toEqual({ host: '::1', port: 9 });
    expect(parseEndpoint('127.0.0.1:0', '--listen', true)).toEqual({ host: '127.0.0.1', port: 0 });
  });
  it.each([
    ['127.0.0.1', 'expected HOST:PORT'],
    ['127.0.0.1:', 'expected HOST:PORT'],
    [':80', 'expected HOST:PORT'],
    ['::1:80', 'expected HOST:PORT'],
    ['[zz]:80', 'not an IPv6 address'],
    ['127.0.0.1:65536', 'PORT must be 1..65535'],
    ['127.0.0.1:0', 'PORT must be 1..65535'],
    ['a b:1', 'expected HOST:PORT'],
  ])('refuses %j', (text, message) => {
    expect(() => parseEndpoint(text, '--connect', false)).toThrow(RelaySetupError);
    expect(() => parseEndpoint(text, '--connect', false)).toThrow(message);
  });
});

describe('gateway devices are not re-exported', () => {
  it('recognises the serial the gateway gives its uhid/usbip devices', () => {
    expect(isGatewayDevice({ serialNumber: `${GATEWAY_DEVICE_SERIAL}-0` })).toBe(true);
    expect(isGatewayDevice({ serialNumber: `${GATEWAY_DEVICE_SERIAL}-12` })).toBe(true);
    expect(isGatewayDevice({ serialNumber: '' })).toBe(false);
    expect(isGatewayDevice({ serialNumber: '0123456789' })).toBe(false);
  });
});

describe('--trust values', () => {
  it('are a list whether given once or many times', () => {
    expect(trustList(undefined)).toEqual([]);
    expect(trustList('aa')).toEqual(['aa']);
    expect(trustList(['aa', 'bb'])).toEqual(['aa', 'bb']);
  });
});
