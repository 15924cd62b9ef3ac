/**
 * `--connect HOST:PORT`: is the peer reachable (TCP, short timeout), and is the certificate it presents one this
 * installation trusts? The TLS probe offers our own certificate and closes right after the handshake, before the
 * tunnel's HELLO, so the peer logs at most a dropped connection.
 */
import { X509Certificate } from 'node:crypto';
import { fingerprintOf } from '../../tunnel/fingerprint.ts';
import type { TrustSet } from '../../tunnel/trust.ts';
import { fail, notApplicable, ok, type Finding } from './finding.ts';
import type { DoctorPorts, Endpoint, ProbeIdentity } from './ports.ts';

export const PEER_TIMEOUT_MS = 3000;

export interface PeerCheck {
  readonly findings: Finding[];
  /** The peer's certificate, when the handshake worked (the clock check compares dates with it). */
  readonly peerCert?: X509Certificate;
}

export async function checkPeer(
  ports: DoctorPorts,
  connect: Endpoint | undefined,
  identity: ProbeIdentity | undefined,
  trust: TrustSet,
  timeoutMs = PEER_TIMEOUT_MS,
): Promise<PeerCheck> {
  if (connect === undefined) return { findings: [notApplicable('peer', 'no --connect HOST:PORT given: reachability not checked')] };
  const where = `${connect.host}:${connect.port}`;
  const tcp = await ports.tcpConnect(connect, timeoutMs);
  if (!tcp.ok) {
    const fix =
      tcp.code === 'ECONNREFUSED'
        ? `nothing listens there: start the peer (keytunnel agent --listen ${where} …) or fix the address`
        : tcp.code === 'ETIMEDOUT'
          ? 'check the address, the firewall and any SSH port forwarding on the way'
          : 'check the address and the network path';
    return { findings: [fail('peer', `cannot reach ${where}: ${tcp.error}`, fix)] };
  }
  const findings: Finding[] = [ok('peer', `${where} accepts TCP connections`)];
  const probe = await ports.tlsPeerCertificate(connect, identity, timeoutMs);
  if (!probe.ok) {
    findings.push(fail('peer', `no TLS 1.3 handshake with ${where}: ${probe.error}`, `is ${where} a keytunnel agent/gateway started with --listen?`));
    return { findings };
  }
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(probe.certDer);
  } catch (err) {
    findings.push(fail('peer', `${where} sent a certificate that cannot be parsed: ${(err as Error).message}`, 'is it a keytunnel peer?'));
    return { findings };
  }
  const fingerprint = fingerprintOf(probe.certDer);
  const entry = trust.lookup(fingerprint);
  findings.push(
    entry !== undefined
      ? ok('peer', `${where} is ${entry.name ?? fingerprint}, a trusted peer`)
      : fail(
          'peer',
          `${where} presents ${fingerprint}, which is not trusted here`,
          `if that is your peer (compare with keytunnel id there): keytunnel trust add ${fingerprint} --name <name>`,
        ),
  );
  return { findings, peerCert: cert };
}
