/**
 * The Linux uhid character-device protocol (include/uapi/linux/uhid.h, Documentation/hid/uhid.rst): every read
 * and write of /dev/uhid is one `struct uhid_event` (packed, little endian, 4380 bytes), a u32 type followed by a
 * type-specific payload. Pure encoders and a validating decoder; no I/O.
 */

// enum uhid_event_type
export const UHID_DESTROY = 1;
export const UHID_START = 2;
export const UHID_STOP = 3;
export const UHID_OPEN = 4;
export const UHID_CLOSE = 5;
export const UHID_OUTPUT = 6;
export const UHID_GET_REPORT = 9;
export const UHID_GET_REPORT_REPLY = 10;
export const UHID_CREATE2 = 11;
export const UHID_INPUT2 = 12;
export const UHID_SET_REPORT = 13;
export const UHID_SET_REPORT_REPLY = 14;

// enum uhid_report_type
export const UHID_FEATURE_REPORT = 0;
export const UHID_OUTPUT_REPORT = 1;
export const UHID_INPUT_REPORT = 2;

/** sizeof(struct uhid_event): the u32 type plus the union, whose u64 member (uhid_start_req) pads it to 4376. */
export const UHID_EVENT_SIZE = 4380;
/** UHID_DATA_MAX and HID_MAX_DESCRIPTOR_SIZE. */
export const UHID_DATA_MAX = 4096;
export const BUS_USB = 0x03;
export const EIO = 5;

// struct uhid_create2_req field offsets (after the 4-byte type).
const CREATE2_NAME = 4; // u8 name[128]
const CREATE2_PHYS = 132; // u8 phys[64]
const CREATE2_UNIQ = 196; // u8 uniq[64]
const CREATE2_RD_SIZE = 260; // u16
const CREATE2_BUS = 262; // u16
const CREATE2_VENDOR = 264; // u32
const CREATE2_PRODUCT = 268; // u32
const CREATE2_VERSION = 272; // u32
const CREATE2_COUNTRY = 276; // u32
const CREATE2_RD_DATA = 280; // u8 rd_data[4096]
// struct uhid_output_req: u8 data[4096]; u16 size; u8 rtype.
const OUTPUT_SIZE = 4 + UHID_DATA_MAX;
const OUTPUT_RTYPE = OUTPUT_SIZE + 2;

export interface UhidCreate2 {
  /** Device name (HID_NAME); truncated to 127 UTF-8 bytes so it stays NUL-terminated. */
  readonly name: string;
  readonly phys?: string;
  readonly uniq?: string;
  readonly reportDescriptor: Uint8Array;
  readonly bus?: number;
  readonly vendor: number;
  readonly product: number;
  readonly version?: number;
  readonly country?: number;
}

function newEvent(type: number): { bytes: Uint8Array; view: DataView } {
  const bytes = new Uint8Array(UHID_EVENT_SIZE);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, type, true);
  return { bytes, view };
}

/** Writes a NUL-terminated string field, cut at a UTF-8 boundary to fit `size - 1` bytes. */
function putString(bytes: Uint8Array, offset: number, size: number, text: string): void {
  const utf8 = new TextEncoder().encode(text);
  let n = Math.min(utf8.length, size - 1);
  while (n > 0 && n < utf8.length && (utf8[n] & 0xc0) === 0x80) n--; // don't split a code point
  bytes.set(utf8.subarray(0, n), offset);
}

export function encodeCreate2(req: UhidCreate2): Uint8Array {
  if (req.reportDescriptor.length === 0 || req.reportDescriptor.length > UHID_DATA_MAX) {
    throw new RangeError(`report descriptor of ${req.reportDescriptor.length} bytes`);
  }
  const { bytes, view } = newEvent(UHID_CREATE2);
  putString(bytes, CREATE2_NAME, 128, req.name);
  putString(bytes, CREATE2_PHYS, 64, req.phys ?? '');
  putString(bytes, CREATE2_UNIQ, 64, req.uniq ?? '');
  view.setUint16(CREATE2_RD_SIZE, req.reportDescriptor.length, true);
  view.setUint16(CREATE2_BUS, req.bus ?? BUS_USB, true);
  view.setUint32(CREATE2_VENDOR, req.vendor >>> 0, true);
  view.setUint32(CREATE2_PRODUCT, req.product >>> 0, true);
  view.setUint32(CREATE2_VERSION, (req.version ?? 0) >>> 0, true);
  view.setUint32(CREATE2_COUNTRY, (req.country ?? 0) >>> 0, true);
  bytes.set(req.reportDescriptor, CREATE2_RD_DATA);
  return bytes;
}

/**
 * UHID_INPUT2: u16 size + the report. The kernel zero-extends short writes, so only the used prefix is returned
 * (4 + 2 + report bytes). For a device without report IDs the data is the bare report.
 */
export function encodeInput2(report: Uint8Array): Uint8Array {
  if (report.length > UHID_DATA_MAX) throw new RangeError(`input report of ${report.length} bytes`);
  const bytes = new Uint8Array(6 + report.length);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, UHID_INPUT2, true);
  view.setUint16(4, report.length, true);
  bytes.set(report, 6);
  return bytes;
}

export function encodeDestroy(): Uint8Array {
  return newEvent(UHID_DESTROY).bytes.subarray(0, 4);
}

/** UHID_GET_REPORT_REPLY (u32 id, u16 err, u16 size, data): we answer every GET_REPORT with `err`. */
export function encodeGetReportReply(id: number, err: number): Uint8Array {
  const bytes = new Uint8Array(12);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, UHID_GET_REPORT_REPLY, true);
  view.setUint32(4, id >>> 0, true);
  view.setUint16(8, err, true);
  view.setUint16(10, 0, true);
  return bytes;
}

/** UHID_SET_REPORT_REPLY (u32 id, u16 err). */
export function encodeSetReportReply(id: number, err: number): Uint8Array {
  const bytes = new Uint8Array(10);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, UHID_SET_REPORT_REPLY, true);
  view.setUint32(4, id >>> 0, true);
  view.setUint16(8, err, true);
  return bytes;
}

export type UhidEvent =
  | { readonly type: 'start'; readonly devFlags: bigint }
  | { readonly type: 'stop' }
  | { readonly type: 'open' }
  | { readonly type: 'close' }
  /** `data` is what the kernel passed through: for hidraw writes, the report-ID byte (0) first. */
  | { readonly type: 'output'; readonly rtype: number; readonly data: Uint8Array }
  | { readonly type: 'get-report'; readonly id: number; readonly rnum: number; readonly rtype: number }
  | { readonly type: 'set-report'; readonly id: number; readonly rnum: number; readonly rtype: number }
  | { readonly type: 'unknown'; readonly code: number }
  | { readonly type: 'invalid'; readonly reason: string };

/**
 * Decodes one event read from /dev/uhid. Never throws: a short or inconsistent event decodes as 'invalid' (the
 * kernel zero-extends nothing on reads, so every length is checked against what was actually read).
 */
export function decodeEvent(buf: Uint8Array): UhidEvent {
  if (buf.length < 4) return { type: 'invalid', reason: `event of ${buf.length} bytes` };
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const type = view.getUint32(0, true);
  switch (type) {
    case UHID_START:
      return { type: 'start', devFlags: buf.length >= 12 ? view.getBigUint64(4, true) : 0n };
    case UHID_STOP:
      return { type: 'stop' };
    case UHID_OPEN:
      return { type: 'open' };
    case UHID_CLOSE:
      return { type: 'close' };
    case UHID_OUTPUT: {
      if (buf.length < OUTPUT_RTYPE + 1) return { type: 'invalid', reason: `UHID_OUTPUT of ${buf.length} bytes` };
      const size = view.getUint16(OUTPUT_SIZE, true);
      if (size > UHID_DATA_MAX) return { type: 'invalid', reason: `UHID_OUTPUT size ${size}` };
      return { type: 'output', rtype: buf[OUTPUT_RTYPE], data: buf.slice(4, 4 + size) };
    }
    case UHID_GET_REPORT:
    case UHID_SET_REPORT: {
      if (buf.length < 10) return { type: 'invalid', reason: `report request of ${buf.length} bytes` };
      const ev = { id: view.getUint32(4, true), rnum: buf[8], rtype: buf[9] };
      return type === UHID_GET_REPORT ? { type: 'get-report', ...ev } : { type: 'set-report', ...ev };
    }
    default:
      return { type: 'unknown', code: type };
  }
}

/**
 * The 64-byte report inside a UHID_OUTPUT from hidraw: hidraw passes the report number first (0 for a device
 * without report IDs, as ours), so the report is data[1..]. A short report is zero-padded (the rest of a HID
 * report is undefined, and CTAPHID pads with zeros); anything else is not ours to interpret.
 */
export function outputReport(ev: { readonly rtype: number; readonly data: Uint8Array }, reportSize: number): Uint8Array | undefined {
  if (ev.rtype !== UHID_OUTPUT_REPORT) return undefined;
  if (ev.data.length < 2 || ev.data.length > reportSize + 1 || ev.data[0] !== 0) return undefined;
  const report = new Uint8Array(reportSize);
  report.set(ev.data.subarray(1));
  return report;
}
