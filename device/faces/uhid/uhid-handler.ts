/**
 * What the uhid face does with each event the kernel sends (no I/O of its own, so it is tested on any host):
 *
 * - UHID_OPEN (the first opener of the hidraw node; the kernel counts openers) attaches a HostLink to the device
 *   engine; UHID_CLOSE (the last opener gone) and UHID_STOP close it, dropping the host's channels and pending
 *   request in the engine.
 * - UHID_OUTPUT: hidraw passes the report-ID byte (0) first; the 64-byte report without it goes to the link.
 * - GET_REPORT / SET_REPORT (feature reports, which a FIDO device has none of) are answered with EIO at once so
 *   the caller does not wait for the kernel's 5-second timeout.
 * - Input reports from the engine go out as UHID_INPUT2 through the pacer (uhid-pacer.ts).
 */
import type { Logger } from '../../../protocol/logger.ts';
import { HID_REPORT_SIZE } from '../../host-link.ts';
import type { HostLink, ReportDevice } from '../../host-link.ts';
import { InputPacer } from './uhid-pacer.ts';
import type { PacerOptions } from './uhid-pacer.ts';
import { EIO, encodeGetReportReply, encodeInput2, encodeSetReportReply, outputReport } from './uhid-protocol.ts';
import type { UhidEvent } from './uhid-protocol.ts';

export class UhidHandler {
  private link: HostLink | undefined;
  private readonly pacer: InputPacer;
  private stopped = false;

  constructor(
    private readonly device: ReportDevice,
    /** Writes one event to /dev/uhid; must not throw. */
    private readonly write: (event: Uint8Array) => void,
    private readonly log: Logger,
    pacing?: PacerOptions,
  ) {
    this.pacer = new InputPacer((report) => {
      if (!this.stopped) this.write(encodeInput2(report));
    }, pacing);
  }

  /** Whether a host has the device open (a HostLink is attached). */
  get attached(): boolean {
    return this.link !== undefined;
  }

  handle(event: UhidEvent): void {
    switch (event.type) {
      case 'start':
        this.log.debug({ devFlags: event.devFlags.toString() }, 'uhid start');
        return;
      case 'stop':
        this.log.debug({}, 'uhid stop');
        this.detach();
        return;
      case 'open':
        this.detach();
        if (this.stopped) return;
        this.link = this.device.attach((report) => this.sendInput(report));
        this.log.debug({}, 'uhid open: host attached');
        return;
      case 'close':
        this.log.debug({}, 'uhid close: host detached');
        this.detach();
        return;
      case 'output': {
        const report = outputReport(event, HID_REPORT_SIZE);
        if (!report) {
          this.log.debug({ rtype: event.rtype, size: event.data.length }, 'ignoring an output event that is not a report');
          return;
        }
        if (!this.link) {
          // The kernel sends OPEN before any write reaches us; a report without an opener has nowhere to go.
          this.log.debug({}, 'output report without an opener; dropped');
          return;
        }
        this.link.receive(report);
        return;
      }
      case 'get-report':
        this.write(encodeGetReportReply(event.id, EIO));
        return;
      case 'set-report':
        this.write(encodeSetReportReply(event.id, EIO));
        return;
      case 'unknown':
        this.log.debug({ code: event.code }, 'ignoring an unknown uhid event');
        return;
      case 'invalid':
        this.log.warn({ reason: event.reason }, 'invalid uhid event');
        return;
    }
  }

  /** The device is going away: close the link, drop queued input, ignore everything from now on. */
  close(): void {
    this.stopped = true;
    this.detach();
  }

  private sendInput(report: Uint8Array): void {
    if (this.stopped) return;
    if (report.length !== HID_REPORT_SIZE) {
      this.log.warn({ size: report.length }, 'device produced a report that is not 64 bytes; dropped');
      return;
    }
    this.pacer.send(report);
  }

  private detach(): void {
    this.pacer.clear();
    const link = this.link;
    this.link = undefined;
    link?.close();
  }
}
