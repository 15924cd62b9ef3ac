/**
 * The Linux uhid face: shows a ReportDevice (the CTAPHID device engine) to the kernel as a FIDO HID device
 * through /dev/uhid, so hidraw clients (libfido2, python-fido2, browsers) find it like a USB security key.
 *
 * - UHID_CREATE2 with the CTAP 2.1 PS 2021-06-15 §11.2.8.2 report descriptor, named after the exported authenticator.
 * - A dedicated worker thread (uhid-reader-worker.js) blocks in read() and copies every event into a
 *   SharedArrayBuffer ring; this thread consumes the ring (Atomics.waitAsync). The kernel queues only 32
 *   UHID_OUTPUT events and drops the rest, so reading must never wait on this thread's event loop.
 * - Events are handled by UhidHandler (uhid-handler.ts): OPEN/CLOSE attach and close a HostLink, OUTPUT reports
 *   go to it, input reports come back as paced UHID_INPUT2 (hidraw keeps only 64 unread input reports per reader).
 * - close() destroys the device (UHID_DESTROY), stops the reader and closes /dev/uhid.
 *
 * How long a message survives the kernel's queues under qemu (test/vm/uhid.vm.test.ts): docs/platform-notes.md.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { silentLogger, type Logger } from '../../../protocol/logger.ts';
import type { ReportDevice } from '../../host-link.ts';
import { UhidHandler } from './uhid-handler.ts';
import type { PacerOptions } from './uhid-pacer.ts';
import { UHID_EVENT_SIZE, decodeEvent, encodeCreate2, encodeDestroy } from './uhid-protocol.ts';
import { DEFAULT_PRODUCT_ID, DEFAULT_VENDOR_ID, FIDO_REPORT_DESCRIPTOR } from '../usb-descriptors.ts';
import { KeytunnelError } from '../../../protocol/errors.ts';

export interface UhidFaceOptions {
  /** HID device name (what `fido2-token -L` and browsers show), e.g. the exported authenticator's label. */
  readonly name: string;
  readonly vendor?: number;
  readonly product?: number;
  /** bcdDevice-style version number reported to the kernel. */
  readonly version?: number;
  /** HID_UNIQ (a serial number string); empty by default. */
  readonly uniq?: string;
  /** HID_PHYS; defaults to "keytunnel". */
  readonly phys?: string;
  /** The uhid character device (default /dev/uhid). */
  readonly path?: string;
  readonly log?: Logger;
  /** Input report pacing (default: bursts of 32, then one per millisecond). */
  readonly pacing?: PacerOptions;
}

export interface UhidFace {
  readonly name: string;
  /** Destroy the device and release /dev/uhid. Idempotent. */
  close(): Promise<void>;
}

/** /dev/uhid could not be opened or the device could not be created. */
export class UhidError extends KeytunnelError {
  override readonly name = 'UhidError';
  readonly code = 'UHID';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

// Ring geometry (shared with the worker through workerData).
const RING_SLOTS = 256; // 256 events of slack on top of the kernel's own 32
const SLOT_SIZE = 4 + UHID_EVENT_SIZE; // u32 byte count + the event (4384, a multiple of 4)
const CTRL = { head: 0, tail: 1, stop: 2, exited: 3, errno: 4 } as const;
const CTRL_WORDS = 8;
/** How long close() waits for the reader to see the STOP event that UHID_DESTROY queues. */
const STOP_WAIT_MS = 1500;

interface WaitAsyncResult {
  readonly async: boolean;
  readonly value: Promise<'ok' | 'not-equal' | 'timed-out'> | 'ok' | 'not-equal' | 'timed-out';
}
// ES2024's Atomics.waitAsync (present in Node 20's V8; missing from the es2023 lib typings).
const waitAsync = (Atomics as unknown as { waitAsync(a: Int32Array, i: number, v: number, t?: number): WaitAsyncResult })
  .waitAsync;

export function startUhidFace(device: ReportDevice, opts: UhidFaceOptions): UhidFace {
  return UhidDevice.start(device, opts);
}

class UhidDevice implements UhidFace {
  readonly name: string;
  private readonly log: Logger;
  private readonly ring = new SharedArrayBuffer(RING_SLOTS * SLOT_SIZE);
  private readonly ctrl = new Int32Array(new SharedArrayBuffer(CTRL_WORDS * 4));
  private readonly ringBytes = new Uint8Array(this.ring);
  private readonly ringView = new DataView(this.ring);
  private worker: Worker | undefined;
  private workerExited: Promise<void> = Promise.resolve();
  private tail = 0;
  private readonly handler: UhidHandler;
  private closing: Promise<void> | undefined;

  private constructor(
    device: ReportDevice,
    private readonly fd: number,
    private readonly create2: Uint8Array,
    opts: UhidFaceOptions,
  ) {
    this.name = opts.name;
    this.log = opts.log ?? silentLogger;
    this.handler = new UhidHandler(device, (event) => this.write(event), this.log, opts.pacing);
  }

  static start(device: ReportDevice, opts: UhidFaceOptions): UhidDevice {
    const path = opts.path ?? '/dev/uhid';
    const create2 = encodeCreate2({
      name: opts.name,
      phys: opts.phys ?? 'keytunnel',
      uniq: opts.uniq ?? '',
      reportDescriptor: FIDO_REPORT_DESCRIPTOR,
      vendor: opts.vendor ?? DEFAULT_VENDOR_ID,
      product: opts.product ?? DEFAULT_PRODUCT_ID,
      version: opts.version ?? 0,
    });
    let fd: number;
    try {
      fd = openSync(path, 'r+');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const hint =
        code === 'ENOENT'
          ? ' (load the uhid kernel module: modprobe uhid)'
          : code === 'EACCES' || code === 'EPERM'
            ? ' (needs root, or a udev rule granting access to /dev/uhid)'
            : '';
      throw new UhidError(`cannot open ${path}: ${code ?? String(err)}${hint}`, { cause: err });
    }
    const face = new UhidDevice(device, fd, create2, opts);
    try {
      writeSync(fd, create2);
    } catch (err) {
      closeSync(fd);
      throw new UhidError(`UHID_CREATE2 failed: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
    }
    face.startReader();
    face.log.info({ name: opts.name, path }, 'uhid device created');
    return face;
  }

  private startReader(): void {
    const worker = new Worker(new URL('./uhid-reader-worker.js', import.meta.url), {
      workerData: {
        fd: this.fd,
        ring: this.ring,
        ctrl: this.ctrl.buffer,
        slots: RING_SLOTS,
        slotSize: SLOT_SIZE,
        eventSize: UHID_EVENT_SIZE,
        index: CTRL,
      },
      // The reader needs no stdio of its own; keep it small.
      resourceLimits: { maxOldGenerationSizeMb: 16, maxYoungGenerationSizeMb: 4 },
    });
    this.worker = worker;
    this.workerExited = new Promise((resolve) => worker.once('exit', () => resolve()));
    worker.on('error', (err) => this.log.warn({ err: String(err) }, 'uhid reader thread failed'));
    void this.pump();
  }

  /** Consume the ring until the reader exits. */
  private async pump(): Promise<void> {
    for (;;) {
      // Read `exited` before `head`: the reader publishes its last event before it sets `exited`, so once
      // `exited` is seen, draining up to the head read after it loses nothing.
      const exited = Atomics.load(this.ctrl, CTRL.exited) !== 0;
      const head = Atomics.load(this.ctrl, CTRL.head);
      while (this.tail !== head) {
        const slot = (this.tail >>> 0) % RING_SLOTS;
        const base = slot * SLOT_SIZE;
        const n = Math.min(this.ringView.getUint32(base, true), UHID_EVENT_SIZE);
        // Decode copies what it keeps (output data is sliced), so the slot can be released right after.
        const event = decodeEvent(this.ringBytes.subarray(base + 4, base + 4 + n));
        this.tail = (this.tail + 1) | 0;
        Atomics.store(this.ctrl, CTRL.tail, this.tail);
        Atomics.notify(this.ctrl, CTRL.tail);
        try {
          this.handler.handle(event);
        } catch (err) {
          this.log.warn({ err: String(err) }, 'uhid event handling failed');
        }
      }
      if (exited) break;
      const r = waitAsync(this.ctrl, CTRL.head, head);
      if (r.async) await r.value;
    }
    const errno = Atomics.load(this.ctrl, CTRL.errno);
    if (errno !== 0 && !this.closing) this.log.warn({ errno }, 'reading /dev/uhid failed; the device is gone');
    this.handler.close();
  }

  private write(event: Uint8Array): void {
    try {
      writeSync(this.fd, event);
    } catch (err) {
      this.log.warn({ err: (err as NodeJS.ErrnoException).code ?? String(err) }, 'write to /dev/uhid failed');
    }
  }

  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    this.handler.close();
    Atomics.store(this.ctrl, CTRL.stop, 1);
    // UHID_DESTROY removes the device; for a started device the kernel queues UHID_STOP, which wakes the reader.
    this.write(encodeDestroy());
    if (!(await exitedWithin(this.workerExited, STOP_WAIT_MS))) {
      // The device never started (no STOP queued): create a throwaway device so the kernel queues UHID_START,
      // which wakes the reader; closing the fd below destroys it.
      this.log.debug({}, 'uhid reader still blocked; waking it');
      try {
        writeSync(this.fd, this.create2);
      } catch {
        /* nothing more we can do; terminate below */
      }
      if (!(await exitedWithin(this.workerExited, STOP_WAIT_MS))) {
        this.log.warn({}, 'uhid reader thread did not stop; abandoning it');
        this.worker?.unref();
        void this.worker?.terminate();
      }
    }
    try {
      closeSync(this.fd);
    } catch {
      /* already closed */
    }
    this.log.info({ name: this.name }, 'uhid device destroyed');
  }
}

async function exitedWithin(exited: Promise<void>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  const result = await Promise.race([exited.then(() => true), timeout]);
  clearTimeout(timer);
  return result;
}
