/**
 * The report port of one real FIDO key, over node-hid's async API (`HIDAsync`): 64-byte output reports out,
 * 64-byte input reports in, nothing else. CTAPHID framing lives in the CTAPHID client above this.
 *
 * hidapi's write wants the report id first, so every 64-byte report goes out as 65 bytes with id 0 (FIDO HID
 * reports have no report id; CTAP 2.1 PS 2021-06-15 §11.2.4). Reads come back as the bare 64-byte report. Every
 * node-hid failure is mapped to a typed error (errors.ts): access denied (with the fix for the platform), device
 * removed, or I/O. After `close()` — or after the device went away — every call fails fast.
 */
import { createRequire } from 'node:module';
import { HID_REPORT_SIZE } from '../../../protocol/ctaphid.ts';
import type { ReportPort } from './ctaphid-client.ts';
import { HidClosedError, HidDeviceRemovedError, type HidError, HidIoError, mapNodeHidError } from './errors.ts';

/** The slice of node-hid's `HIDAsync` instance this transport uses (injectable for tests). */
export interface NodeHidDevice {
  write(values: number[] | Buffer): Promise<number>;
  read(timeOut?: number): Promise<Buffer | undefined>;
  close(): Promise<void>;
}

/** The slice of the node-hid module used by the agent: enumeration and async open. */
export interface NodeHidApi {
  devicesAsync(): Promise<NodeHidDeviceInfo[]>;
  HIDAsync: { open(path: string): Promise<NodeHidDevice> };
}

/** node-hid's device record (its `Device` type), as far as the agent reads it. */
export interface NodeHidDeviceInfo {
  vendorId: number;
  productId: number;
  path?: string;
  serialNumber?: string;
  manufacturer?: string;
  product?: string;
  release?: number;
  interface?: number;
  usagePage?: number;
  usage?: number;
}

let realNodeHid: NodeHidApi | undefined;

/** node-hid itself, loaded on first use (a CommonJS native addon; loading it can fail on an odd platform). */
export function loadNodeHid(): NodeHidApi {
  if (!realNodeHid) {
    const require = createRequire(import.meta.url);
    realNodeHid = require('node-hid') as NodeHidApi;
  }
  return realNodeHid;
}

export interface NodeHidTransportOptions {
  /** node-hid, or a fake of it. */
  readonly hid?: NodeHidApi;
  /** Platform whose error wording applies (tests pass 'win32'). */
  readonly platform?: NodeJS.Platform;
}

/** One open FIDO HID device. Not safe for concurrent reads; the CTAPHID client (behind the queue) reads serially. */
export class NodeHidTransport implements ReportPort {
  readonly path: string;
  private readonly device: NodeHidDevice;
  private readonly platform: NodeJS.Platform;
  private closing: Promise<void> | null = null;
  private failure: HidError | null = null;

  private constructor(path: string, device: NodeHidDevice, platform: NodeJS.Platform) {
    this.path = path;
    this.device = device;
    this.platform = platform;
  }

  /** Open the HID node at `path`; rejects with HidAccessDeniedError / HidDeviceRemovedError / HidIoError. */
  static async open(path: string, options: NodeHidTransportOptions = {}): Promise<NodeHidTransport> {
    const platform = options.platform ?? process.platform;
    const hid = options.hid ?? loadNodeHid();
    let device: NodeHidDevice;
    try {
      device = await hid.HIDAsync.open(path);
    } catch (err) {
      throw mapNodeHidError(err, 'open', path, platform);
    }
    return new NodeHidTransport(path, device, platform);
  }

  get closed(): boolean {
    return this.closing !== null;
  }

  /** Send one 64-byte output report (report id 0 is prepended here). */
  async write(report: Uint8Array): Promise<void> {
    this.assertUsable();
    if (report.length !== HID_REPORT_SIZE) {
      throw new HidIoError(`output report must be ${HID_REPORT_SIZE} bytes, got ${report.length}`);
    }
    const framed = Buffer.alloc(HID_REPORT_SIZE + 1);
    framed.set(report, 1);
    let written: number;
    try {
      written = await this.device.write(framed);
    } catch (err) {
      throw this.fail(err, 'write');
    }
    // hidapi answers -1 on failure without throwing on some backends; a short write is a broken device.
    if (written < HID_REPORT_SIZE) {
      throw this.fail(new Error(`short write (${written} of ${framed.length} bytes)`), 'write');
    }
  }

  /**
   * Read one input report, waiting at most `timeoutMs` (≥ 0). Resolves undefined when nothing arrived in time.
   * Reports shorter than 64 bytes (some backends trim trailing zeros) are zero-padded; longer ones truncated.
   */
  async read(timeoutMs: number): Promise<Uint8Array | undefined> {
    this.assertUsable();
    const timeout = Number.isFinite(timeoutMs) ? Math.max(0, Math.floor(timeoutMs)) : 0;
    let data: Buffer | undefined;
    try {
      data = await this.device.read(timeout);
    } catch (err) {
      throw this.fail(err, 'read');
    }
    if (this.closing) throw this.failure ?? new HidClosedError(`FIDO key ${this.path}`);
    if (!data || data.length === 0) return undefined;
    const report = new Uint8Array(HID_REPORT_SIZE);
    report.set(data.subarray(0, HID_REPORT_SIZE));
    return report;
  }

  /** Close the device; idempotent, never rejects (a key that is already gone cannot be closed twice). */
  close(): Promise<void> {
    if (!this.closing) {
      this.closing = this.device.close().then(
        () => undefined,
        () => undefined,
      );
    }
    return this.closing;
  }

  private assertUsable(): void {
    if (this.failure) throw this.failure;
    if (this.closing) throw new HidClosedError(`FIDO key ${this.path}`);
  }

  /** Map a failure; a removed device stays failed (later calls fail fast with the same typed error). */
  private fail(err: unknown, op: 'write' | 'read'): HidError {
    if (this.closing && !this.failure) return new HidClosedError(`FIDO key ${this.path}`);
    const mapped = mapNodeHidError(err, op, this.path, this.platform);
    if (mapped instanceof HidDeviceRemovedError) {
      this.failure = mapped;
      void this.close();
    }
    return mapped;
  }
}
