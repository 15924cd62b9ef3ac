/**
 * The U2F batch attestation certificate (FIDO U2F Raw Message Formats §4.3): a self-signed X.509 certificate
 * with a P-256 key, generated once on first use and kept in the state. python-fido2's Ctap1 and libfido2 parse
 * it and verify registration signatures with its key. (@peculiar/x509 needs the reflect-metadata polyfill, so it
 * is loaded lazily, only when a certificate is made.)
 */
import { createPrivateKey, webcrypto, type KeyObject } from 'node:crypto';
import type { U2fAttestation } from './state.ts';

export const U2F_ATTESTATION_SUBJECT = 'CN=keytunnel soft authenticator U2F attestation, O=keytunnel';

export async function generateU2fAttestation(serial: Uint8Array): Promise<U2fAttestation> {
  await import('reflect-metadata');
  const x509 = await import('@peculiar/x509');
  x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  // Positive serial: clear the top bit.
  const serialHex = Buffer.from(serial).toString('hex').replace(/^./, (c) => (parseInt(c, 16) & 7).toString(16));
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialHex,
    name: U2F_ATTESTATION_SUBJECT,
    notBefore: new Date('2024-01-01T00:00:00Z'),
    notAfter: new Date('2049-12-31T23:59:59Z'),
    signingAlgorithm: alg,
    keys: keys as unknown as Parameters<typeof x509.X509CertificateGenerator.createSelfSigned>[0]['keys'],
    extensions: [new x509.BasicConstraintsExtension(false, undefined, true)],
  });
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  return { certificate: new Uint8Array(cert.rawData), privateKey: new Uint8Array(pkcs8) };
}

export function attestationKey(att: U2fAttestation): KeyObject {
  return createPrivateKey({ key: Buffer.from(att.privateKey), format: 'der', type: 'pkcs8' });
}
