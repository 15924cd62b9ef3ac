/**
 * The contract between a HID face (loopback, uhid, usbip: bytes in and out of a kernel or a socket) and the
 * CTAPHID device engine. Faces know nothing of CTAP; the engine knows nothing of kernels.
 *
 * A face calls `attach` once per host connection (a loopback TCP connection, a uhid open, a USB/IP import),
 * giving the function that delivers 64-byte input reports to that host. It then passes every 64-byte output
 * report the host writes to `receive`, and calls `close` when the host goes away (the engine drops the
 * channels that host opened and aborts its pending request).
 */
export { HID_REPORT_SIZE } from '../protocol/ctaphid.ts';

export interface HostLink {
  receive(report: Uint8Array): void;
  close(): void;
}

export interface ReportDevice {
  attach(sendInput: (report: Uint8Array) => void): HostLink;
}
