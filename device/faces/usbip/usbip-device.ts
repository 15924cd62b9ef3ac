/**
 * The virtual full-speed USB FIDO key behind the USB/IP face, one instance per imported connection: answers the
 * control requests a host sends while enumerating and using a HID device (USB 2.0 §9.4 standard requests, HID 1.11
 * §7.1-7.2 class requests), turns interrupt OUT transfers on endpoint 0x01 into output reports for the HostLink,
 * and holds interrupt IN transfers on endpoint 0x81 until the device has a report (a USB device NAKs IN tokens
 * while it has nothing to say, so an IN URB is never completed with zero bytes).
 *
 * No sockets here: the server (usbip.ts) feeds decoded URBs in and writes what `send` is given.
 */
import type { Logger } from '../../../protocol/logger.ts';
import { HID_REPORT_SIZE } from '../../host-link.ts';
import type { HostLink, ReportDevice } from '../../host-link.ts';
import {
  ECONNRESET,
  ENOMEM,
  EPIPE,
  USBIP_DIR_IN,
  decodeSetup,
  encodeRetSubmit,
  encodeRetUnlink,
} from './usbip-protocol.ts';
import type { SetupPacket } from './usbip-protocol.ts';
import {
  FIDO_EP_IN,
  FIDO_EP_OUT,
  FIDO_REPORT_DESCRIPTOR,
  STRING_DESCRIPTOR_LANGUAGES,
  STRING_MANUFACTURER,
  STRING_PRODUCT,
  STRING_SERIAL,
  USB_DT_CONFIG,
  USB_DT_DEVICE,
  USB_DT_HID,
  USB_DT_REPORT,
  USB_DT_STRING,
  configurationDescriptor,
  deviceDescriptor,
  hidDescriptor,
  stringDescriptor,
} from '../usb-descriptors.ts';
import type { UsbDeviceIdentity } from '../usb-descriptors.ts';

// USB 2.0 §9.4 Table 9-4: standard request codes.
export const USB_REQ_GET_STATUS = 0x00;
export const USB_REQ_CLEAR_FEATURE = 0x01;
export const USB_REQ_SET_FEATURE = 0x03;
export const USB_REQ_SET_ADDRESS = 0x05;
export const USB_REQ_GET_DESCRIPTOR = 0x06;
export const USB_REQ_GET_CONFIGURATION = 0x08;
export const USB_REQ_SET_CONFIGURATION = 0x09;
export const USB_REQ_GET_INTERFACE = 0x0a;
export const USB_REQ_SET_INTERFACE = 0x0b;
// HID 1.11 §7.2: class-specific requests.
export const HID_REQ_GET_REPORT = 0x01;
export const HID_REQ_GET_IDLE = 0x02;
export const HID_REQ_GET_PROTOCOL = 0x03;
export const HID_REQ_SET_REPORT = 0x09;
export const HID_REQ_SET_IDLE = 0x0a;
export const HID_REQ_SET_PROTOCOL = 0x0b;
/** HID 1.11 §7.2.1: report type in the high byte of wValue. */
const HID_REPORT_TYPE_OUTPUT = 0x02;

const REQ_TYPE_MASK = 0x60;
const REQ_TYPE_STANDARD = 0x00;
const REQ_TYPE_CLASS = 0x20;
const REQ_RECIPIENT_MASK = 0x1f;
const REQ_RECIPIENT_DEVICE = 0;
const REQ_RECIPIENT_INTERFACE = 1;
const REQ_DIR_IN = 0x80;

/** Bound on interrupt IN URBs held at once (Linux keeps one in flight; anything near this is abuse). */
export const MAX_PENDING_IN = 64;
/** Bound on input reports waiting for an IN URB (129 make the longest CTAPHID message; a few messages' worth). */
export const MAX_QUEUED_REPORTS = 1024;
/** Bound on one transfer's data from the network. */
export const MAX_TRANSFER_LENGTH = 4096;

export interface ControlResult {
  /** 0 or a negative errno (-EPIPE = stall). */
  readonly status: number;
  /** IN data (already cut to wLength); empty for OUT or stall. */
  readonly data: Uint8Array;
  /** An output report carried by the request (HID SET_REPORT), delivered after the transfer completes. */
  readonly output?: Uint8Array;
}

const STALL: ControlResult = { status: -EPIPE, data: new Uint8Array(0) };
const ACK: ControlResult = { status: 0, data: new Uint8Array(0) };

export interface SubmitRequest {
  readonly seqnum: number;
  readonly direction: number;
  readonly ep: number;
  readonly transferBufferLength: number;
  readonly setup: Uint8Array;
  /** OUT data (transferBufferLength bytes); empty for IN. */
  readonly data: Uint8Array;
}

export class UsbipFidoDevice {
  private configuration = 0;
  private readonly pendingIn: { seqnum: number; length: number }[] = [];
  private readonly reports: Uint8Array[] = [];
  private link: HostLink | undefined;
  private closed = false;

  constructor(
    device: ReportDevice,
    private readonly identity: UsbDeviceIdentity,
    /** Writes one encoded RET_SUBMIT / RET_UNLINK to the connection. */
    private readonly send: (message: Uint8Array) => void,
    private readonly log: Logger,
  ) {
    this.link = device.attach((report) => this.input(report));
  }

  /** USBIP_CMD_SUBMIT. */
  submit(req: SubmitRequest): void {
    if (this.closed) return;
    const ep = req.ep & 0x0f;
    if (ep === 0) {
      const r = this.control(decodeSetup(req.setup), req.data);
      const data = r.data.subarray(0, Math.max(0, Math.min(r.data.length, req.transferBufferLength)));
      const actual = req.direction === USBIP_DIR_IN ? data.length : r.status === 0 ? req.data.length : 0;
      this.send(encodeRetSubmit(req.seqnum, r.status, actual, req.direction === USBIP_DIR_IN ? data : undefined));
      if (r.output) this.output(r.output);
      return;
    }
    if (req.direction === USBIP_DIR_IN && ep === (FIDO_EP_IN & 0x0f)) {
      if (req.transferBufferLength <= 0) {
        this.send(encodeRetSubmit(req.seqnum, 0, 0));
        return;
      }
      if (this.pendingIn.length >= MAX_PENDING_IN) {
        this.send(encodeRetSubmit(req.seqnum, -ENOMEM, 0));
        return;
      }
      this.pendingIn.push({ seqnum: req.seqnum, length: req.transferBufferLength });
      this.flush();
      return;
    }
    if (req.direction !== USBIP_DIR_IN && ep === FIDO_EP_OUT) {
      // Complete the OUT transfer before the device reacts (its answer completes a held IN transfer), as on a
      // real bus. One 64-byte packet is one report; a longer transfer is several.
      this.send(encodeRetSubmit(req.seqnum, 0, req.data.length));
      for (let o = 0; o < req.data.length; o += HID_REPORT_SIZE) this.output(req.data.subarray(o, o + HID_REPORT_SIZE));
      return;
    }
    this.log.debug({ ep: req.ep, direction: req.direction }, 'usbip: transfer to an endpoint we do not have; stalled');
    this.send(encodeRetSubmit(req.seqnum, -EPIPE, 0));
  }

  /** USBIP_CMD_UNLINK: a held IN URB is given back with -ECONNRESET; an already completed one with 0. */
  unlink(seqnum: number, unlinkSeqnum: number): void {
    if (this.closed) return;
    const i = this.pendingIn.findIndex((p) => p.seqnum === unlinkSeqnum);
    if (i >= 0) {
      this.pendingIn.splice(i, 1);
      this.send(encodeRetUnlink(seqnum, -ECONNRESET));
    } else {
      this.send(encodeRetUnlink(seqnum, 0));
    }
  }

  /** The connection is gone: detach from the device engine. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.pendingIn.length = 0;
    this.reports.length = 0;
    const link = this.link;
    this.link = undefined;
    link?.close();
  }

  /** Number of IN URBs held (for tests). */
  get heldInTransfers(): number {
    return this.pendingIn.length;
  }

  private output(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    const report = new Uint8Array(HID_REPORT_SIZE);
    report.set(chunk);
    this.link?.receive(report);
  }

  private input(report: Uint8Array): void {
    if (this.closed) return;
    if (report.length !== HID_REPORT_SIZE) {
      this.log.warn({ size: report.length }, 'usbip: device produced a report that is not 64 bytes; dropped');
      return;
    }
    if (this.reports.length >= MAX_QUEUED_REPORTS) {
      this.log.warn({}, 'usbip: the host is not reading input reports; dropping one');
      return;
    }
    this.reports.push(report.slice());
    this.flush();
  }

  private flush(): void {
    while (this.pendingIn.length > 0 && this.reports.length > 0) {
      const urb = this.pendingIn.shift() as { seqnum: number; length: number };
      const report = (this.reports.shift() as Uint8Array).subarray(0, urb.length);
      this.send(encodeRetSubmit(urb.seqnum, 0, report.length, report));
    }
  }

  /** A control transfer on endpoint 0. */
  control(setup: SetupPacket, data: Uint8Array): ControlResult {
    const type = setup.bmRequestType & REQ_TYPE_MASK;
    const recipient = setup.bmRequestType & REQ_RECIPIENT_MASK;
    const dirIn = (setup.bmRequestType & REQ_DIR_IN) !== 0;
    const reply = (bytes: Uint8Array): ControlResult => ({ status: 0, data: bytes.subarray(0, setup.wLength) });
    if (type === REQ_TYPE_STANDARD) {
      switch (setup.bRequest) {
        case USB_REQ_GET_DESCRIPTOR: {
          if (!dirIn) return STALL;
          const d = this.descriptor(recipient, setup.wValue >>> 8, setup.wValue & 0xff, setup.wIndex);
          return d ? reply(d) : STALL;
        }
        case USB_REQ_GET_STATUS:
          // Bus powered, no remote wakeup; interfaces and endpoints: not halted.
          return dirIn ? reply(new Uint8Array(2)) : STALL;
        case USB_REQ_SET_CONFIGURATION:
          if (setup.wValue > 1) return STALL;
          this.configuration = setup.wValue;
          return ACK;
        case USB_REQ_GET_CONFIGURATION:
          return reply(Uint8Array.of(this.configuration));
        case USB_REQ_SET_INTERFACE:
          return setup.wIndex === 0 && setup.wValue === 0 ? ACK : STALL;
        case USB_REQ_GET_INTERFACE:
          return setup.wIndex === 0 ? reply(Uint8Array.of(0)) : STALL;
        case USB_REQ_CLEAR_FEATURE:
        case USB_REQ_SET_FEATURE:
        case USB_REQ_SET_ADDRESS:
          return ACK;
        default:
          return STALL;
      }
    }
    if (type === REQ_TYPE_CLASS && recipient === REQ_RECIPIENT_INTERFACE && setup.wIndex === 0) {
      switch (setup.bRequest) {
        case HID_REQ_SET_IDLE:
        case HID_REQ_SET_PROTOCOL:
          return ACK;
        case HID_REQ_GET_IDLE:
          return reply(Uint8Array.of(0));
        case HID_REQ_GET_PROTOCOL:
          return reply(Uint8Array.of(1)); // report protocol
        case HID_REQ_SET_REPORT:
          // An output report sent over the control pipe (hosts may do this instead of using the OUT endpoint).
          if (setup.wValue >>> 8 !== HID_REPORT_TYPE_OUTPUT || data.length === 0) return STALL;
          return { status: 0, data: new Uint8Array(0), output: data.subarray(0, HID_REPORT_SIZE) };
        default:
          // GET_REPORT: a FIDO device has no report to give on demand.
          return STALL;
      }
    }
    return STALL;
  }

  private descriptor(recipient: number, type: number, index: number, wIndex: number): Uint8Array | undefined {
    if (recipient === REQ_RECIPIENT_DEVICE) {
      switch (type) {
        case USB_DT_DEVICE:
          return deviceDescriptor(this.identity);
        case USB_DT_CONFIG:
          return index === 0 ? configurationDescriptor() : undefined;
        case USB_DT_STRING:
          return this.string(index);
        default:
          // Device qualifier (a full-speed-only device must stall it, USB 2.0 §9.6.2), BOS, debug, ...
          return undefined;
      }
    }
    if (recipient === REQ_RECIPIENT_INTERFACE && wIndex === 0) {
      if (type === USB_DT_REPORT) return FIDO_REPORT_DESCRIPTOR;
      if (type === USB_DT_HID) return hidDescriptor();
    }
    return undefined;
  }

  private string(index: number): Uint8Array | undefined {
    switch (index) {
      case 0:
        return STRING_DESCRIPTOR_LANGUAGES;
      case STRING_MANUFACTURER:
        return stringDescriptor(this.identity.manufacturer);
      case STRING_PRODUCT:
        return stringDescriptor(this.identity.product);
      case STRING_SERIAL:
        return stringDescriptor(this.identity.serial);
      default:
        return undefined;
    }
  }
}
