/**
 * `keytunnel doctor`'s checks in order, each a small function over injected ports (cli/doctor/ports.ts):
 * uhid + udev rule + hidraw (Linux faces), USB/IP client, identity + trust (state dir), peer reachability and
 * trust (--connect), clocks, Windows elevation, the agent's login service.
 */
import { homedir } from 'node:os';
import { TrustSet } from '../../tunnel/trust.ts';
import { checkOwnCertificate, checkNtp, checkPeerCertificate } from './clock.ts';
import { checkElevation } from './elevation.ts';
import { checkAgentService } from './agent-service.ts';
import type { Finding } from './finding.ts';
import { checkHidraw } from './hidraw.ts';
import { checkIdentity, checkTrust, loadStateDirTrust } from './identity.ts';
import { checkPeer, PEER_TIMEOUT_MS } from './peer.ts';
import type { DoctorPorts, Endpoint } from './ports.ts';
import { checkUdevRule, checkUhid } from './uhid.ts';
import { checkUsbip } from './usbip.ts';

export interface DoctorOptions {
  readonly stateDir: string;
  readonly connect?: Endpoint;
  readonly peerTimeoutMs?: number;
  /** Whose login service to look for (default: this process's user). */
  readonly user?: { readonly home: string; readonly uid?: number };
}

export async function runDoctor(options: DoctorOptions, ports: DoctorPorts): Promise<Finding[]> {
  const findings: Finding[] = [];
  findings.push(await checkUhid(ports));
  findings.push(await checkUdevRule(ports));
  findings.push(...(await checkHidraw(ports)));
  findings.push(...(await checkUsbip(ports)));
  const { finding: identityFinding, identity } = await checkIdentity(ports, options.stateDir);
  findings.push(identityFinding);
  findings.push(await checkTrust(options.stateDir));
  let trust: TrustSet;
  try {
    trust = await loadStateDirTrust(options.stateDir);
  } catch {
    trust = new TrustSet(); // checkTrust already reported why
  }
  const peer = await checkPeer(ports, options.connect, identity, trust, options.peerTimeoutMs ?? PEER_TIMEOUT_MS);
  findings.push(...peer.findings);
  const now = ports.now();
  if (identity !== undefined) findings.push(checkOwnCertificate(identity.certPem, now));
  if (peer.peerCert !== undefined) findings.push(checkPeerCertificate(peer.peerCert, now));
  const ntp = await checkNtp(ports);
  if (ntp !== undefined) findings.push(ntp);
  findings.push(await checkElevation(ports));
  findings.push(await checkAgentService(ports, options.user ?? { home: homedir(), uid: process.getuid?.() }));
  return findings;
}
