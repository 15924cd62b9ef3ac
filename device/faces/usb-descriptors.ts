/**
 * Descriptors of the virtual FIDO HID device, shared by the uhid face (which hands the kernel only the HID report
 * descriptor) and the USB/IP face (which answers GET_DESCRIPTOR for a whole full-speed USB device).
 *
 * The report descriptor is the one CTAP 2.1 PS 2021-06-15 §11.2.8.2 ("HID report descriptor and device discovery")
 * prescribes: usage page 0xF1D0 (FIDO Alliance), usage 0x01 (CTAPHID), one 64-byte input report (usage 0x20) and one
 * 64-byte output report (usage 0x21), no report IDs. USB layouts follow the USB 2.0 spec §9.6 and HID 1.11 §6.2.1.
 */
import { HID_REPORT_SIZE } from '../host-link.ts';

/** §11.2.8.2: the 34-byte FIDO HID report descriptor. */
export const FIDO_REPORT_DESCRIPTOR: Uint8Array = Uint8Array.of(
  0x06, 0xd0, 0xf1, // Usage Page (FIDO Alliance 0xF1D0)
  0x09, 0x01, //       Usage (CTAPHID)
  0xa1, 0x01, //       Collection (Application)
  0x09, 0x20, //         Usage (Input Report Data)
  0x15, 0x00, //         Logical Minimum (0)
  0x26, 0xff, 0x00, //   Logical Maximum (255)
  0x75, 0x08, //         Report Size (8)
  0x95, 0x40, //         Report Count (64)
  0x81, 0x02, //         Input (Data, Var, Abs)
  0x09, 0x21, //         Usage (Output Report Data)
  0x15, 0x00, //         Logical Minimum (0)
  0x26, 0xff, 0x00, //   Logical Maximum (255)
  0x75, 0x08, //         Report Size (8)
  0x95, 0x40, //         Report Count (64)
  0x91, 0x02, //         Output (Data, Var, Abs)
  0xc0, //             End Collection
);

// USB 2.0 §9.4 Table 9-5: descriptor types; HID 1.11 §7.1: class descriptor types.
export const USB_DT_DEVICE = 0x01;
export const USB_DT_CONFIG = 0x02;
export const USB_DT_STRING = 0x03;
export const USB_DT_INTERFACE = 0x04;
export const USB_DT_ENDPOINT = 0x05;
export const USB_DT_DEVICE_QUALIFIER = 0x06;
export const USB_DT_HID = 0x21;
export const USB_DT_REPORT = 0x22;

export const USB_CLASS_HID = 0x03;
/** Interrupt endpoints of the FIDO interface (§11.2.8.1 "Interface and endpoint descriptors": one interrupt IN and one interrupt OUT). */
export const FIDO_EP_IN = 0x81;
export const FIDO_EP_OUT = 0x01;
/** Polling interval in ms (full speed: bInterval counts frames of 1 ms). */
export const FIDO_EP_INTERVAL = 5;

/** String descriptor indices used by the device descriptor. */
export const STRING_MANUFACTURER = 1;
export const STRING_PRODUCT = 2;
export const STRING_SERIAL = 3;

export interface UsbDeviceIdentity {
  readonly vendorId: number;
  readonly productId: number;
  /** bcdDevice, e.g. 0x0100 for 1.00. */
  readonly bcdDevice: number;
  readonly manufacturer: string;
  readonly product: string;
  readonly serial: string;
}

function u16le(v: number): [number, number] {
  return [v & 0xff, (v >>> 8) & 0xff];
}

/** USB 2.0 §9.6.1: the 18-byte device descriptor of a full-speed device with one configuration. */
export function deviceDescriptor(id: UsbDeviceIdentity): Uint8Array {
  return Uint8Array.of(
    18, USB_DT_DEVICE,
    // bcdUSB 2.00 like real keys; a full-speed-only 2.0 device answers GET_DESCRIPTOR(device_qualifier) with a
    // request error (USB 2.0 §9.6.2), which the USB/IP face does.
    ...u16le(0x0200),
    0x00, 0x00, 0x00, // class/subclass/protocol defined per interface
    HID_REPORT_SIZE, // bMaxPacketSize0
    ...u16le(id.vendorId),
    ...u16le(id.productId),
    ...u16le(id.bcdDevice),
    STRING_MANUFACTURER, STRING_PRODUCT, STRING_SERIAL,
    1, // bNumConfigurations
  );
}

/** HID 1.11 §6.2.1: the 9-byte HID class descriptor (it points at the report descriptor). */
export function hidDescriptor(): Uint8Array {
  return Uint8Array.of(
    9, USB_DT_HID,
    ...u16le(0x0111), // bcdHID 1.11
    0x00, // bCountryCode: not localized
    1, // bNumDescriptors
    USB_DT_REPORT,
    ...u16le(FIDO_REPORT_DESCRIPTOR.length),
  );
}

/**
 * USB 2.0 §9.6.3: configuration descriptor followed by the interface (§9.6.5: HID class, no subclass, no
 * protocol), the HID descriptor and the two interrupt endpoints (§9.6.6), 41 bytes in all.
 */
export function configurationDescriptor(): Uint8Array {
  const iface = Uint8Array.of(9, USB_DT_INTERFACE, 0, 0, 2, USB_CLASS_HID, 0x00, 0x00, 0);
  const epIn = Uint8Array.of(7, USB_DT_ENDPOINT, FIDO_EP_IN, 0x03, ...u16le(HID_REPORT_SIZE), FIDO_EP_INTERVAL);
  const epOut = Uint8Array.of(7, USB_DT_ENDPOINT, FIDO_EP_OUT, 0x03, ...u16le(HID_REPORT_SIZE), FIDO_EP_INTERVAL);
  const hid = hidDescriptor();
  const total = 9 + iface.length + hid.length + epIn.length + epOut.length;
  const config = Uint8Array.of(
    9, USB_DT_CONFIG,
    ...u16le(total),
    1, // bNumInterfaces
    1, // bConfigurationValue
    0, // iConfiguration
    0x80, // bmAttributes: bus powered (bit 7 must be set)
    50, // bMaxPower: 100 mA in 2 mA units
  );
  const out = new Uint8Array(total);
  let o = 0;
  for (const part of [config, iface, hid, epIn, epOut]) {
    out.set(part, o);
    o += part.length;
  }
  return out;
}

/** USB 2.0 §9.6.7: string descriptor 0 lists the supported languages (US English only). */
export const STRING_DESCRIPTOR_LANGUAGES: Uint8Array = Uint8Array.of(4, USB_DT_STRING, 0x09, 0x04);

/** USB 2.0 §9.6.7: a UTF-16LE string descriptor, truncated to the 126 code units a one-byte bLength allows. */
export function stringDescriptor(text: string): Uint8Array {
  const units = Math.min(text.length, 126);
  const out = new Uint8Array(2 + 2 * units);
  out[0] = out.length;
  out[1] = USB_DT_STRING;
  for (let i = 0; i < units; i++) {
    const c = text.charCodeAt(i);
    out[2 + 2 * i] = c & 0xff;
    out[3 + 2 * i] = c >>> 8;
  }
  return out;
}

/** pid.codes' vendor ID, and one of its test product IDs: the defaults when the caller names none. */
export const DEFAULT_VENDOR_ID = 0x1209;
export const DEFAULT_PRODUCT_ID = 0x0001;
