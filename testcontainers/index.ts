/**
 * keytunnel/testcontainers: the keytunnel image as a testcontainers module (testcontainers is an optional peer
 * dependency of keytunnel: install it next to keytunnel to use this entry point).
 */
export { DEFAULT_KEYTUNNEL_IMAGE, KEYTUNNEL_DEVICE_PORT, KeytunnelContainer, StartedKeytunnelContainer } from './keytunnel-container.ts';
export type { DeviceAddress } from '../testing/types.ts';
