/**
 * The sample relying party for the browser tests: a tiny HTTP server (node:http, no framework) around
 * cli/demo/relying-party.ts (@simplewebauthn/server verifying registration and authentication exactly as a real
 * website would), serving the page of page.ts. It runs inside the qemu guest next to headless Chromium, on
 * http://localhost:PORT — a secure context, and "localhost" is the RP ID.
 *
 * The server's verdict is the test's assertion: every step (options served, response verified or rejected, the
 * page's own error report) is recorded, with the clientDataJSON of each response parsed (never compared as a
 * string), and written as JSON to VERDICT_FILE when the page reports it is finished — or when DEADLINE_MS passes.
 *
 * Usage: rp-server.ts PORT VERDICT_FILE [DEADLINE_MS]   (prints "listening on PORT" when ready; exits 0 after the
 * page finished, 3 at the deadline)
 */
import { writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AuthenticationResponseJSON, RegistrationResponseJSON } from '@simplewebauthn/server';
import { DemoRelyingParty } from '../../cli/demo/relying-party.ts';
import { renderPage } from './page.ts';

/** The parsed fields of a clientDataJSON the test looks at (WebAuthn L2 §5.8.1). */
export interface ClientDataSummary {
  readonly type: unknown;
  readonly origin: unknown;
  readonly crossOrigin: unknown;
}

export interface StepVerdict {
  readonly verified: boolean;
  readonly error?: string;
  readonly clientData?: ClientDataSummary;
  readonly aaguid?: string;
  readonly fmt?: string;
  readonly newCounter?: number;
}

export interface RpVerdict {
  /** Every request path, in order (e.g. "GET /registration/options"). */
  readonly requests: string[];
  registration?: StepVerdict;
  authentication?: StepVerdict;
  /** What the page reported when a ceremony threw (e.g. NotAllowedError). */
  clientError?: { readonly phase: string; readonly name: string; readonly message: string };
  done?: { readonly ok: boolean };
  deadline?: boolean;
}

/** Bodies are a few KiB at most; refuse more. */
const MAX_BODY_BYTES = 64 * 1024;
/** Bound the request log (a misbehaving page must not grow it without end). */
const MAX_LOGGED_REQUESTS = 200;

function readBody(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        reject(new Error('request body too large'));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown);
      } catch (err) {
        reject(err as Error);
      }
    });
    req.on('error', reject);
  });
}

/** Parse a response's clientDataJSON (base64url) into the fields the test asserts on. */
export function summarizeClientData(response: unknown): ClientDataSummary | undefined {
  const b64 = (response as { response?: { clientDataJSON?: unknown } } | null)?.response?.clientDataJSON;
  if (typeof b64 !== 'string' || b64.length > MAX_BODY_BYTES) return undefined;
  try {
    const parsed = JSON.parse(Buffer.from(b64, 'base64url').toString('utf8')) as Record<string, unknown>;
    return { type: parsed['type'], origin: parsed['origin'], crossOrigin: parsed['crossOrigin'] };
  } catch {
    return undefined;
  }
}

function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
  res.end(body);
}
const sendJson = (res: ServerResponse, status: number, value: unknown): void =>
  send(res, status, 'application/json', JSON.stringify(value));

export interface RpServer {
  readonly port: number;
  readonly verdict: RpVerdict;
  /** Resolves when the page reported that it finished (done or client-error). */
  readonly finished: Promise<void>;
  close(): Promise<void>;
}

export async function startRpServer(port: number, host = '127.0.0.1'): Promise<RpServer> {
  const rp = new DemoRelyingParty('localhost', 'keytunnel sample RP', `http://localhost:${port}`);
  const verdict: RpVerdict = { requests: [] };
  let finish!: () => void;
  const finished = new Promise<void>((r) => (finish = r));

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? '/').split('?')[0];
    if (verdict.requests.length < MAX_LOGGED_REQUESTS) verdict.requests.push(`${req.method} ${path}`);
    if (req.method === 'GET' && path === '/') return send(res, 200, 'text/html; charset=utf-8', renderPage());
    if (req.method === 'GET' && path === '/registration/options') return sendJson(res, 200, await rp.registrationOptions('consultant'));
    if (req.method === 'GET' && path === '/authentication/options') return sendJson(res, 200, await rp.authenticationOptions());
    if (req.method !== 'POST') return send(res, 404, 'text/plain', 'not found');
    const body = await readBody(req);
    switch (path) {
      case '/registration/verify': {
        const clientData = summarizeClientData(body);
        try {
          const r = await rp.verifyRegistration(body as RegistrationResponseJSON);
          verdict.registration = { verified: true, clientData, aaguid: r.aaguid, fmt: r.fmt };
        } catch (err) {
          verdict.registration = { verified: false, clientData, error: (err as Error).message };
        }
        return sendJson(res, 200, verdict.registration);
      }
      case '/authentication/verify': {
        const clientData = summarizeClientData(body);
        try {
          const r = await rp.verifyAuthentication(body as AuthenticationResponseJSON);
          verdict.authentication = { verified: true, clientData, newCounter: r.newCounter };
        } catch (err) {
          verdict.authentication = { verified: false, clientData, error: (err as Error).message };
        }
        return sendJson(res, 200, verdict.authentication);
      }
      case '/client-error': {
        const b = body as Record<string, unknown>;
        verdict.clientError = {
          phase: String(b['phase']).slice(0, 64),
          name: String(b['name']).slice(0, 64),
          message: String(b['message']).slice(0, 1000),
        };
        sendJson(res, 200, { recorded: true });
        return finish();
      }
      case '/done': {
        verdict.done = { ok: (body as Record<string, unknown>)['ok'] === true };
        sendJson(res, 200, { recorded: true });
        return finish();
      }
      default:
        return send(res, 404, 'text/plain', 'not found');
    }
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) sendJson(res, 400, { error: (err as Error).message });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return {
    port,
    verdict,
    finished,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

// Run as a program (in the guest): serve until the page finishes or the deadline passes, then write the verdict.
if (import.meta.url === `file://${process.argv[1]}`) {
  const [portText, verdictFile, deadlineText = '120000'] = process.argv.slice(2);
  if (portText === undefined || verdictFile === undefined) {
    console.error('usage: rp-server.ts PORT VERDICT_FILE [DEADLINE_MS]');
    process.exit(2);
  }
  const server = await startRpServer(Number(portText));
  console.log(`listening on ${server.port}`);
  const deadline = new Promise<'deadline'>((r) => setTimeout(() => r('deadline'), Number(deadlineText)).unref());
  const outcome = await Promise.race([server.finished.then(() => 'finished' as const), deadline]);
  if (outcome === 'deadline') server.verdict.deadline = true;
  writeFileSync(verdictFile, JSON.stringify(server.verdict, null, 2));
  console.log(`verdict: ${JSON.stringify(server.verdict)}`);
  await server.close();
  process.exit(outcome === 'deadline' ? 3 : 0);
}
