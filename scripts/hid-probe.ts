/**
 * hid-probe: list the FIDO keys node-hid sees and run authenticatorGetInfo on each through the agent's own
 * hardware path (discovery's enumeration -> HidAuthenticator -> CTAPHID client -> NodeHidTransport -> node-hid).
 * Prints one JSON document on stdout; exit 0 when every key answered, 1 when one failed, 2 when none was found.
 *
 *   node --import tsx scripts/hid-probe.ts [--wait-ms N]
 *
 * Meant for the qemu guest, where a uhid device made by `keytunnel soft --hid uhid` shows up as a hidraw node
 * (see docs/platform-notes.md: node-hid's hidraw backend works there). `--wait-ms` polls until at least one
 * key is listed or the time is up (the uhid device may still be appearing).
 */
import { decode, isCborMap, type CborValue } from '../protocol/cbor.ts';
import { listFidoDevices, vidPid, type FidoDeviceInfo } from '../agent/authenticators/hardware/device-info.ts';
import { HidAuthenticator } from '../agent/authenticators/hardware/hid-authenticator.ts';
import { loadNodeHid } from '../agent/authenticators/hardware/node-hid-transport.ts';

interface ProbeResult {
  path: string;
  vidPid: string;
  product: string;
  manufacturer: string;
  serialNumber: string;
  id?: string;
  label?: string;
  capabilities?: number;
  ctap1?: boolean;
  wink?: boolean;
  getInfo?: { versions?: string[]; aaguid?: string; options?: Record<string, boolean>; maxMsgSize?: number; raw: string };
  error?: { name: string; code?: string; message: string };
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}

/** The few getInfo fields (CTAP 2.1 PS 2021-06-15 §6.4) a human checks first; the raw answer is included as hex. */
function summariseGetInfo(answer: Uint8Array): ProbeResult['getInfo'] {
  const out: NonNullable<ProbeResult['getInfo']> = { raw: hex(answer) };
  if (answer.length < 2 || answer[0] !== 0) return out;
  let map: CborValue;
  try {
    map = decode(answer.subarray(1));
  } catch {
    return out;
  }
  if (!isCborMap(map)) return out;
  const versions = map.get(0x01);
  if (Array.isArray(versions)) out.versions = versions.filter((v): v is string => typeof v === 'string');
  const aaguid = map.get(0x03);
  if (aaguid instanceof Uint8Array) out.aaguid = hex(aaguid);
  const options = map.get(0x04);
  if (isCborMap(options)) {
    out.options = {};
    for (const [k, v] of options) if (typeof k === 'string' && typeof v === 'boolean') out.options[k] = v;
  }
  const maxMsgSize = map.get(0x05);
  if (typeof maxMsgSize === 'number') out.maxMsgSize = maxMsgSize;
  return out;
}

async function probe(info: FidoDeviceInfo): Promise<ProbeResult> {
  const base: ProbeResult = {
    path: info.path,
    vidPid: vidPid(info),
    product: info.product,
    manufacturer: info.manufacturer,
    serialNumber: info.serialNumber,
  };
  let key: HidAuthenticator | undefined;
  try {
    key = await HidAuthenticator.open(info);
    return {
      ...base,
      id: key.descriptor.id,
      label: key.descriptor.label,
      capabilities: key.capabilities,
      ctap1: key.descriptor.ctap1,
      wink: key.descriptor.wink,
      getInfo: summariseGetInfo(key.getInfo),
    };
  } catch (err) {
    const e = err instanceof Error ? err : new Error(String(err));
    const code = (e as Error & { code?: unknown }).code;
    return { ...base, error: { name: e.name, ...(typeof code === 'string' ? { code } : {}), message: e.message } };
  } finally {
    await key?.close();
  }
}

async function main(argv: string[]): Promise<number> {
  const waitIndex = argv.indexOf('--wait-ms');
  const waitMs = waitIndex >= 0 ? Math.max(0, Math.min(60_000, Number(argv[waitIndex + 1]) || 0)) : 0;
  const hid = loadNodeHid();
  const deadline = Date.now() + waitMs;
  let devices = await listFidoDevices(hid);
  while (devices.length === 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 200));
    devices = await listFidoDevices(hid);
  }
  const results: ProbeResult[] = [];
  for (const info of devices) results.push(await probe(info));
  process.stdout.write(JSON.stringify({ keys: results }, null, 2) + '\n');
  if (results.length === 0) return 2;
  return results.some((r) => r.error) ? 1 : 0;
}

process.exitCode = await main(process.argv.slice(2));
