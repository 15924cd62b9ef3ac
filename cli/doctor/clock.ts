/**
 * Clock checks. The tunnel pins fingerprints and ignores certificate dates, but a wrong clock still breaks what
 * the VM is for (sign-in tokens, TLS to websites), and it shows in our own certificates: each identity is
 * created with notBefore = creation time − 1 h (tunnel/identity.ts), so
 *   - our own notBefore after now means this clock went back more than an hour since the identity was made;
 *   - the peer's notBefore after now means the peer's clock (when it made its identity) ran ahead of ours by
 *     more than an hour — one of the two clocks is wrong;
 * and on systemd machines `timedatectl` says whether NTP synchronised the clock.
 */
import { X509Certificate } from 'node:crypto';
import { fail, ok, warn, type Finding } from './finding.ts';
import type { DoctorPorts } from './ports.ts';

const iso = (d: Date): string => d.toISOString().replace(/\.\d{3}Z$/, 'Z');

function span(ms: number): string {
  const minutes = Math.round(ms / 60_000);
  if (minutes < 120) return `${minutes} min`;
  const hours = Math.round(minutes / 60);
  return hours < 48 ? `${hours} h` : `${Math.round(hours / 24)} days`;
}

export function checkOwnCertificate(certPem: string, now: Date): Finding {
  const cert = new X509Certificate(certPem);
  const from = new Date(cert.validFrom);
  const to = new Date(cert.validTo);
  if (from.getTime() > now.getTime()) {
    return fail(
      'clock',
      `this installation's certificate starts at ${iso(from)}, ${span(from.getTime() - now.getTime())} after this clock (${iso(now)}): the clock went back`,
      'set the clock right (sudo timedatectl set-ntp true, or the hypervisor\'s time sync)',
    );
  }
  if (to.getTime() < now.getTime()) {
    return fail('clock', `this installation's certificate expired at ${iso(to)} (now ${iso(now)})`, 'check the clock; if it is right, make a new identity (keytunnel id after moving identity.pem aside)');
  }
  return ok('clock', `this installation's certificate is valid now (${iso(now)})`);
}

export function checkPeerCertificate(cert: X509Certificate, now: Date): Finding {
  const from = new Date(cert.validFrom);
  if (from.getTime() > now.getTime()) {
    return warn(
      'clock',
      `the peer's certificate starts at ${iso(from)}, ${span(from.getTime() - now.getTime())} ahead of this clock (${iso(now)}): one of the two clocks is wrong`,
      'compare `date -u` on both machines and enable NTP / the hypervisor\'s time sync on the wrong one',
    );
  }
  return ok('clock', "the peer's certificate dates agree with this clock");
}

/** systemd's view of NTP; nothing is reported where timedatectl is missing or has no systemd to ask. */
export async function checkNtp(ports: DoctorPorts): Promise<Finding | undefined> {
  if (ports.platform !== 'linux') return undefined;
  const r = await ports.run('timedatectl', ['show', '-p', 'NTPSynchronized', '--value'], 5000);
  if (r === undefined || r.code !== 0) return undefined;
  const value = r.stdout.trim();
  if (value === 'yes') return ok('clock', 'NTP has synchronised the system clock');
  if (value === 'no') {
    return warn('clock', 'the system clock is not NTP-synchronised', 'sudo timedatectl set-ntp true (in a VM: enable the hypervisor\'s time sync)');
  }
  return undefined;
}
