/**
 * The sample relying party on the host, without a browser: the verdict the browser tests assert on must say
 * "verified" only when @simplewebauthn/server verified a real ceremony, record failures as failures, and parse
 * clientDataJSON. The ceremonies here are made by keytunnel/testing's WebAuthnTestClient (testing/webauthn-client.ts) against
 * an in-memory soft authenticator, posted over HTTP exactly as the page does.
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { PublicKeyCredentialCreationOptionsJSON, PublicKeyCredentialRequestOptionsJSON } from '@simplewebauthn/server';
import { AlwaysPresence } from '../../agent/presence/always.ts';
import { MemoryStateStore } from '../../agent/authenticators/soft/memory-store.ts';
import { SoftAuthenticator } from '../../agent/authenticators/soft/soft-authenticator.ts';
import { WebAuthnTestClient } from '../../testing/webauthn-client.ts';
import { renderPage } from './page.ts';
import { startRpServer, summarizeClientData, type RpServer } from './rp-server.ts';

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

let server: RpServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

async function start(): Promise<{ server: RpServer; base: string }> {
  const port = await freePort();
  server = await startRpServer(port);
  return { server, base: `http://127.0.0.1:${port}` };
}

const postJson = async (url: string, body: unknown): Promise<Record<string, unknown>> =>
  (await (await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })).json()) as Record<
    string,
    unknown
  >;

async function softPort() {
  const soft = await SoftAuthenticator.open({ store: new MemoryStateStore(), presence: new AlwaysPresence() });
  return (request: Uint8Array) => soft.request('cbor', request, { signal: new AbortController().signal, onStatus: () => {} });
}

describe('sample relying party', () => {
  it('serves the page, which drives create() then get() with an AbortSignal watchdog', async () => {
    const { base } = await start();
    const html = await (await fetch(`${base}/`)).text();
    expect(html).toBe(renderPage());
    expect(html).toContain('navigator.credentials.create({ publicKey, signal: w.signal })');
    expect(html).toContain('navigator.credentials.get({ publicKey, signal: w.signal })');
    expect(html).toContain("post('/client-error'");
  });

  it('verifies a real registration and authentication and records them, with clientDataJSON parsed', async () => {
    const { server: s, base } = await start();
    const origin = `http://localhost:${s.port}`;
    const port = await softPort();
    const regOptions = (await (await fetch(`${base}/registration/options`)).json()) as PublicKeyCredentialCreationOptionsJSON;
    expect(regOptions.rp.id).toBe('localhost');
    const client = new WebAuthnTestClient({ ctap: port, origin });
    const registration = await client.register(regOptions);
    expect((await postJson(`${base}/registration/verify`, registration))['verified']).toBe(true);
    const authOptions = (await (await fetch(`${base}/authentication/options`)).json()) as PublicKeyCredentialRequestOptionsJSON;
    const assertion = await client.authenticate(authOptions);
    expect((await postJson(`${base}/authentication/verify`, assertion))['verified']).toBe(true);
    await postJson(`${base}/done`, { ok: true });
    await s.finished;
    expect(s.verdict.registration).toEqual({
      verified: true,
      clientData: { type: 'webauthn.create', origin, crossOrigin: false },
      aaguid: '70829c58-064f-4078-b3c7-8dc3b4c185b1',
      fmt: 'packed',
    });
    expect(s.verdict.authentication).toEqual({ verified: true, clientData: { type: 'webauthn.get', origin, crossOrigin: false }, newCounter: 2 });
    expect(s.verdict.done).toEqual({ ok: true });
    expect(s.verdict.requests).toEqual([
      'GET /registration/options',
      'POST /registration/verify',
      'GET /authentication/options',
      'POST /authentication/verify',
      'POST /done',
    ]);
  });

  it('a response for the wrong origin is recorded as not verified', async () => {
    const { server: s, base } = await start();
    const port = await softPort();
    const registration = await new WebAuthnTestClient({ ctap: port, origin: 'http://localhost:1' }).register(
      (await (await fetch(`${base}/registration/options`)).json()) as PublicKeyCredentialCreationOptionsJSON,
    );
    const answer = await postJson(`${base}/registration/verify`, registration);
    expect(answer['verified']).toBe(false);
    expect(String(answer['error'])).toMatch(/origin/i);
    expect(s.verdict.registration?.verified).toBe(false);
    expect(s.verdict.registration?.clientData?.origin).toBe('http://localhost:1');
  });

  it("records the page's error report and finishes", async () => {
    const { server: s, base } = await start();
    await postJson(`${base}/client-error`, { phase: 'registration', name: 'NotAllowedError', message: 'The operation either timed out or was not allowed.' });
    await s.finished;
    expect(s.verdict.clientError).toEqual({ phase: 'registration', name: 'NotAllowedError', message: 'The operation either timed out or was not allowed.' });
    expect(s.verdict.registration).toBeUndefined();
  });

  it('refuses a body over 64 KiB and malformed JSON without crashing', async () => {
    const { server: s, base } = await start();
    const big = await fetch(`${base}/registration/verify`, { method: 'POST', body: 'x'.repeat(70 * 1024) }).catch((e: Error) => e);
    if (!(big instanceof Error)) expect(big.status).toBe(400);
    const bad = await fetch(`${base}/registration/verify`, { method: 'POST', body: '{not json' });
    expect(bad.status).toBe(400);
    expect(s.verdict.registration).toBeUndefined();
    expect((await fetch(`${base}/`)).status).toBe(200); // still serving
  });

  it('summarizeClientData parses, and ignores what is not clientDataJSON', () => {
    const cd = Buffer.from(JSON.stringify({ type: 'webauthn.get', challenge: 'x', origin: 'http://localhost:8080', crossOrigin: false, other_keys_can_be_added_here: 'x' })).toString('base64url');
    expect(summarizeClientData({ response: { clientDataJSON: cd } })).toEqual({ type: 'webauthn.get', origin: 'http://localhost:8080', crossOrigin: false });
    expect(summarizeClientData({ response: { clientDataJSON: '!!' } })).toBeUndefined();
    expect(summarizeClientData(null)).toBeUndefined();
    expect(summarizeClientData({ response: {} })).toBeUndefined();
  });
});
