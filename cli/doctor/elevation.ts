/**
 * Windows only: `keytunnel agent --hardware` talks to FIDO keys over raw HID, which Windows (since 10 1903)
 * reserves for administrators — other processes must go through webauthn.dll. `net session` succeeds only in an
 * elevated process, the customary test for elevation without extra tools.
 */
import { notApplicable, ok, warn, type Finding } from './finding.ts';
import type { DoctorPorts } from './ports.ts';

export async function checkElevation(ports: DoctorPorts): Promise<Finding> {
  if (ports.platform !== 'win32') {
    return notApplicable('elevation', 'administrator rights for --hardware are a Windows matter only');
  }
  const r = await ports.run('net', ['session'], 10_000);
  if (r !== undefined && r.code === 0) return ok('elevation', 'running elevated: --hardware can open FIDO keys');
  return warn(
    'elevation',
    'not elevated: `keytunnel agent --hardware` cannot open FIDO keys (Windows lets only administrators use them raw)',
    'run the agent from a terminal started with "Run as administrator" (--soft works without)',
  );
}
