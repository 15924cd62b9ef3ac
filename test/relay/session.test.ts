/**
 * The agent's GatewaySession and the gateway's RemoteRequests/RemoteAuthenticator wired back to back through an
 * in-memory pipe that really encodes and decodes every frame (protocol/tunnel.ts), so what is proven here is what
 * crosses the wire. The TLS path is covered in relay.test.ts.
 */
import { describe, expect, it } from 'vitest';
import {
  STATUS_PROCESSING,
  STATUS_UPNEEDED,
  type Authenticator,
  type RequestContext,
  type RequestKind,
} from '../../protocol/authenticator.ts';
import {
  ERR_AUTHENTICATOR_FAILED,
  ERR_DUPLICATE_REQUEST,
  ERR_PROTOCOL,
  ERR_TOO_MANY_REQUESTS,
  ERR_UNKNOWN_AUTHENTICATOR,
  FrameDecoder,
  encodeFrame,
  type ExportedAuthenticator,
  type Frame,
} from '../../protocol/tunnel.ts';
import { GatewaySession, MAX_SESSION_REQUESTS, identityView, type AuthenticatorView, type SessionHost } from '../../agent/session.ts';
import { MAX_PENDING_REQUESTS, RemoteAuthenticator, RemoteRequestError, RemoteRequests } from '../../gateway/remote-authenticator.ts';
import { silentLogger } from '../../protocol/logger.ts';

const GET_INFO_ANSWER = Uint8Array.of(0x00, 0xa1, 0x01, 0x81, 0x68, ...new TextEncoder().encode('FIDO_2_0'));

/** A scriptable authenticator: each request waits for the test to answer it. */
class ScriptedAuthenticator implements Authenticator {
  readonly descriptor = { id: 'auth-1', label: 'scripted', transport: 'soft' as const, ctap1: true, wink: false };
  readonly calls: { kind: RequestKind; payload: Uint8Array; ctx: RequestContext; answer: (b: Uint8Array) => void; fail: (e: Error) => void }[] = [];
  request(kind: RequestKind, payload: Uint8Array, ctx: RequestContext): Promise<Uint8Array> {
    return new Promise((answer, fail) => {
      this.calls.push({ kind, payload, ctx, answer, fail });
      // Like the soft authenticator: an abort settles promptly with CTAP2_ERR_KEEPALIVE_CANCEL.
      ctx.signal.addEventListener('abort', () => answer(Uint8Array.of(0x2d)), { once: true });
    });
  }
}

const quietLog = silentLogger;

function exportedOf(auth: Authenticator, getInfo = GET_INFO_ANSWER): ExportedAuthenticator {
  const d = auth.descriptor;
  return { id: d.id, label: d.label, transport: 'soft', ctap1: d.ctap1, wink: d.wink, getInfo };
}

/** Both ends plus a pipe: frames are encoded, split into 7-byte chunks and decoded on the other side. */
function wire(auths: Authenticator[], view: AuthenticatorView = identityView) {
  const toGateway: Frame[] = [];
  const toAgent: Frame[] = [];
  let closed = false;
  const gatewayDecoder = new FrameDecoder();
  const agentDecoder = new FrameDecoder();
  const requests = new RemoteRequests();
  const remotes = new Map<string, RemoteAuthenticator>();
  let session!: GatewaySession;
  const deliver = (bytes: Uint8Array, decoder: FrameDecoder): Frame[] => {
    const frames: Frame[] = [];
    for (let i = 0; i < bytes.length; i += 7) frames.push(...decoder.push(bytes.subarray(i, i + 7)));
    return frames;
  };
  const gatewayLink = {
    send(frame: Frame) {
      if (closed) throw new Error('closed');
      for (const f of deliver(encodeFrame(frame), agentDecoder)) {
        toAgent.push(f);
        queueMicrotask(() => session.handleFrame(f));
      }
    },
  };
  const host: SessionHost = {
    lookup: (id) => auths.find((a) => a.descriptor.id === id),
    exported: () => auths.map((a) => exportedOf(a)),
  };
  const agentLink = {
    send(frame: Frame) {
      if (closed) throw new Error('closed');
      for (const f of deliver(encodeFrame(frame), gatewayDecoder)) {
        toGateway.push(f);
        queueMicrotask(() => {
          if (f.type === 'authenticators') {
            for (const a of f.authenticators) {
              const r = remotes.get(a.id);
              if (r) r.update(a);
              else remotes.set(a.id, new RemoteAuthenticator(a, requests));
            }
          } else if (f.type === 'keepalive' || f.type === 'response' || f.type === 'error') requests.handle(f);
        });
      }
    },
    close() {
      drop();
    },
  };
  const drop = () => {
    if (closed) return;
    closed = true;
    session.handleClose();
    requests.unbind(gatewayLink);
  };
  session = new GatewaySession({ fingerprint: 'aa:bb', name: 'vm-1' }, agentLink, host, view, quietLog);
  requests.bind(gatewayLink);
  session.announce();
  return { session, requests, remotes, toGateway, toAgent, drop, gatewayLink };
}

function ctx(overrides: Partial<{ signal: AbortSignal; onStatus: (s: 1 | 2) => void }> = {}): RequestContext {
  return { signal: overrides.signal ?? new AbortController().signal, onStatus: overrides.onStatus ?? (() => {}) };
}

const tick = () => new Promise((r) => setTimeout(r, 0));

describe('relay session over encoded frames', () => {
  it('makeCredential is exactly one REQUEST round trip; the answer comes back byte for byte', async () => {
    const auth = new ScriptedAuthenticator();
    const w = wire([auth]);
    await tick();
    const remote = w.remotes.get('auth-1')!;
    expect(remote.descriptor).toEqual({ id: 'auth-1', label: 'scripted', transport: 'remote', ctap1: true, wink: false });
    const payload = Uint8Array.of(0x01, 0xa0);
    const p = remote.request('cbor', payload, ctx());
    await tick();
    expect(auth.calls).toHaveLength(1);
    expect(auth.calls[0].kind).toBe('cbor');
    expect([...auth.calls[0].payload]).toEqual([0x01, 0xa0]);
    expect(auth.calls[0].ctx.origin).toEqual({ gatewayFingerprint: 'aa:bb', gatewayName: 'vm-1' });
    auth.calls[0].answer(Uint8Array.of(0x00, 0xa1, 0x01, 0x02));
    expect([...(await p)]).toEqual([0x00, 0xa1, 0x01, 0x02]);
    expect(w.requests.requestsSent).toBe(1);
    expect(w.toAgent.filter((f) => f.type === 'request')).toHaveLength(1);
    expect(w.requests.inFlight).toBe(0);
    expect(w.session.pendingRequests).toBe(0);
  });

  it('getInfo is answered from the announced cache: zero round trips', async () => {
    const auth = new ScriptedAuthenticator();
    const w = wire([auth]);
    await tick();
    const remote = w.remotes.get('auth-1')!;
    for (let i = 0; i < 3; i++) expect([...(await remote.request('cbor', Uint8Array.of(0x04), ctx()))]).toEqual([...GET_INFO_ANSWER]);
    expect(w.requests.requestsSent).toBe(0);
    expect(auth.calls).toHaveLength(0);
    expect(remote.getInfoFromCache).toBe(3);
  });

  it('status changes travel as KEEPALIVE frames (changes only) and reach ctx.onStatus', async () => {
    const auth = new ScriptedAuthenticator();
    const w = wire([auth]);
    await tick();
    const seen: number[] = [];
    const p = w.remotes.get('auth-1')!.request('cbor', Uint8Array.of(0x02, 0xa0), ctx({ onStatus: (s) => seen.push(s) }));
    await tick();
    const call = auth.calls[0];
    call.ctx.onStatus(STATUS_PROCESSING);
    call.ctx.onStatus(STATUS_UPNEEDED);
    call.ctx.onStatus(STATUS_UPNEEDED);
    call.ctx.onStatus(STATUS_UPNEEDED);
    await tick();
    expect(seen).toEqual([STATUS_PROCESSING, STATUS_UPNEEDED]);
    expect(w.toGateway.filter((f) => f.type === 'keepalive')).toHaveLength(2);
    call.answer(Uint8Array.of(0x00));
    await p;
  });

  it("aborting the gateway's signal sends CANCEL, which aborts the agent authenticator's signal", async () => {
    const auth = new ScriptedAuthenticator();
    const w = wire([auth]);
    await tick();
    const ac = new AbortController();
    const p = w.remotes.get('auth-1')!.request('cbor', Uint8Array.of(0x01, 0xa0), ctx({ signal: ac.signal }));
    await tick();
    expect(auth.calls[0].ctx.signal.aborted).toBe(false);
    ac.abort();
    await expect(p).rejects.toMatchObject({ code: 'ABORTED' });
    await tick();
    expect(w.toAgent.some((f) => f.type === 'cancel')).toBe(true);
    expect(auth.calls[0].ctx.signal.aborted).toBe(true);
    await tick();
    // The authenticator's late CTAP2_ERR_KEEPALIVE_CANCEL answer is dropped by the gateway (nothing pending).
    expect(w.requests.inFlight).toBe(0);
    expect(w.session.pendingRequests).toBe(0);
  });

  it('a dropped tunnel rejects the pending request at once and aborts it on the agent', async () => {
    const auth = new ScriptedAuthenticator();
    const w = wire([auth]);
    await tick();
    const remote = w.remotes.get('auth-1')!;
    const p = remote.request('cbor', Uint8Array.of(0x01, 0xa0), ctx());
    await tick();
    w.drop();
    await expect(p).rejects.toMatchObject({ code: 'TUNNEL_CLOSED' });
    expect(auth.calls[0].ctx.signal.aborted).toBe(true);
    // While down, a new request fails at once instead of hanging.
    await expect(remote.request('cbor', Uint8Array.of(0x01, 0xa0), ctx())).rejects.toMatchObject({ code: 'TUNNEL_DOWN' });
    // getInfo still comes from the cache (the device stays usable for enumeration during a short outage).
    expect((await remote.request('cbor', Uint8Array.of(0x04), ctx()))[0]).toBe(0);
  });

  it('an authenticator that rejects (transport failure) yields ERROR ERR_AUTHENTICATOR_FAILED', async () => {
    const auth = new ScriptedAuthenticator();
    const w = wire([auth]);
    await tick();
    const p = w.remotes.get('auth-1')!.request('msg', Uint8Array.of(0x00, 0x03, 0, 0, 0), ctx());
    await tick();
    auth.calls[0].fail(new Error('device removed'));
    const err = await p.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RemoteRequestError);
    expect(err).toMatchObject({ code: 'AGENT_ERROR', agentCode: ERR_AUTHENTICATOR_FAILED });
  });

  it('an authenticator the agent does not export is refused with ERR_UNKNOWN_AUTHENTICATOR', async () => {
    const auth = new ScriptedAuthenticator();
    const w = wire([auth]);
    await tick();
    const ghost = new RemoteAuthenticator({ ...exportedOf(auth), id: 'ghost' }, w.requests);
    await expect(ghost.request('cbor', Uint8Array.of(0x01, 0xa0), ctx())).rejects.toMatchObject({
      code: 'AGENT_ERROR',
      agentCode: ERR_UNKNOWN_AUTHENTICATOR,
    });
  });

  it('an authenticator marked absent fails fast, pending requests included', async () => {
    const auth = new ScriptedAuthenticator();
    const w = wire([auth]);
    await tick();
    const remote = w.remotes.get('auth-1')!;
    const p = remote.request('cbor', Uint8Array.of(0x01, 0xa0), ctx());
    await tick();
    remote.markAbsent();
    await expect(p).rejects.toMatchObject({ code: 'AUTHENTICATOR_GONE' });
    await expect(remote.request('cbor', Uint8Array.of(0x04), ctx())).rejects.toMatchObject({ code: 'AUTHENTICATOR_GONE' });
    remote.update(exportedOf(auth));
    expect(remote.isPresent).toBe(true);
  });

  it('the per-gateway view wraps every authenticator with the gateway identity (policy seam)', async () => {
    const auth = new ScriptedAuthenticator();
    const gateways: string[] = [];
    const view: AuthenticatorView = (gw) => {
      gateways.push(`${gw.fingerprint}/${gw.name}`);
      return (inner) => ({
        descriptor: inner.descriptor,
        request: () => Promise.resolve(Uint8Array.of(0x27)), // CTAP2_ERR_OPERATION_DENIED from a "policy"
      });
    };
    const w = wire([auth], view);
    await tick();
    expect([...(await w.remotes.get('auth-1')!.request('cbor', Uint8Array.of(0x01, 0xa0), ctx()))]).toEqual([0x27]);
    expect(auth.calls).toHaveLength(0);
    expect(gateways).toEqual(['aa:bb/vm-1']);
  });
});

describe('GatewaySession refuses what a hostile gateway sends', () => {
  function direct() {
    const sent: Frame[] = [];
    let closedWith: string | null = null;
    const auth = new ScriptedAuthenticator();
    const session = new GatewaySession(
      { fingerprint: 'cc', name: 'evil' },
      { send: (f) => void sent.push(f), close: (r) => void (closedWith = r) },
      { lookup: (id) => (id === 'auth-1' ? auth : undefined), exported: () => [exportedOf(auth)] },
      identityView,
      quietLog,
    );
    return { sent, session, auth, closed: () => closedWith };
  }

  it('a reused request id gets ERR_DUPLICATE_REQUEST and does not reach the authenticator twice', () => {
    const d = direct();
    const req = { type: 'request' as const, requestId: 7, authenticatorId: 'auth-1', kind: 'cbor' as const, payload: Uint8Array.of(1) };
    d.session.handleFrame(req);
    d.session.handleFrame(req);
    expect(d.auth.calls).toHaveLength(1);
    expect(d.sent).toEqual([{ type: 'error', requestId: 7, code: ERR_DUPLICATE_REQUEST, message: expect.any(String) }]);
  });

  it(`more than ${MAX_SESSION_REQUESTS} requests in flight are refused with ERR_TOO_MANY_REQUESTS`, () => {
    const d = direct();
    for (let i = 1; i <= MAX_SESSION_REQUESTS + 3; i++) {
      d.session.handleFrame({ type: 'request', requestId: i, authenticatorId: 'auth-1', kind: 'cbor', payload: Uint8Array.of(1) });
    }
    expect(d.auth.calls).toHaveLength(MAX_SESSION_REQUESTS);
    expect(d.sent.filter((f) => f.type === 'error' && f.code === ERR_TOO_MANY_REQUESTS)).toHaveLength(3);
  });

  it('frames only an agent may send are a protocol error: ERROR ERR_PROTOCOL, requests aborted, link closed', () => {
    const d = direct();
    d.session.handleFrame({ type: 'request', requestId: 1, authenticatorId: 'auth-1', kind: 'cbor', payload: Uint8Array.of(1) });
    d.session.handleFrame({ type: 'response', requestId: 1, payload: Uint8Array.of(0) });
    expect(d.sent.at(-1)).toMatchObject({ type: 'error', requestId: null, code: ERR_PROTOCOL });
    expect(d.closed()).toMatch(/response/);
    expect(d.auth.calls[0].ctx.signal.aborted).toBe(true);
    // Nothing else is processed after the close.
    d.session.handleFrame({ type: 'request', requestId: 2, authenticatorId: 'auth-1', kind: 'cbor', payload: Uint8Array.of(1) });
    expect(d.auth.calls).toHaveLength(1);
  });

  it('CANCEL for an unknown id is ignored', () => {
    const d = direct();
    d.session.handleFrame({ type: 'cancel', requestId: 99 });
    expect(d.sent).toEqual([]);
  });
});

describe('RemoteRequests request ids (protocol/README.md rules 3 and 5)', () => {
  function sender() {
    const sent: Frame[] = [];
    return { sent, send: (f: Frame) => void sent.push(f) };
  }
  const ids = (sent: Frame[]) => sent.filter((f) => f.type === 'request').map((f) => (f as { requestId: number }).requestId);

  it('a cancelled id stays reserved until the agent’s final answer, then it is free again', async () => {
    const s = sender();
    const r = new RemoteRequests();
    r.bind(s);
    const ac = new AbortController();
    const p = r.request('a', 'cbor', Uint8Array.of(1), ctx({ signal: ac.signal }));
    ac.abort();
    await expect(p).rejects.toMatchObject({ code: 'ABORTED' });
    expect(s.sent.map((f) => f.type)).toEqual(['request', 'cancel']);
    expect(r.inFlight).toBe(1); // reserved: the agent may still answer id 1
    // A late KEEPALIVE does not free it; the final RESPONSE does, and is not delivered to anyone.
    expect(r.handle({ type: 'keepalive', requestId: 1, status: 2 })).toBe(true);
    expect(r.inFlight).toBe(1);
    expect(r.handle({ type: 'response', requestId: 1, payload: Uint8Array.of(0x2d) })).toBe(true);
    expect(r.inFlight).toBe(0);
    // Answers for ids nobody tracks are ignored.
    expect(r.handle({ type: 'response', requestId: 1, payload: Uint8Array.of(0) })).toBe(false);
  });

  it('ids increase, skip ids still in flight and never use 0', async () => {
    const s = sender();
    const r = new RemoteRequests();
    r.bind(s);
    const a = r.request('a', 'cbor', Uint8Array.of(1), ctx());
    const b = r.request('a', 'cbor', Uint8Array.of(1), ctx());
    r.handle({ type: 'response', requestId: 1, payload: Uint8Array.of(0) });
    r.handle({ type: 'response', requestId: 2, payload: Uint8Array.of(0) });
    await Promise.all([a, b]);
    expect(ids(s.sent)).toEqual([1, 2]);
    // Force the counter to the top of the range: it wraps to 1, skipping 0.
    (r as unknown as { nextId: number }).nextId = 0xffff_ffff;
    const c = r.request('a', 'cbor', Uint8Array.of(1), ctx());
    const d = r.request('a', 'cbor', Uint8Array.of(1), ctx());
    expect(ids(s.sent).slice(2)).toEqual([0xffff_ffff, 1]);
    r.unbind(s);
    await expect(c).rejects.toMatchObject({ code: 'TUNNEL_CLOSED' });
    await expect(d).rejects.toMatchObject({ code: 'TUNNEL_CLOSED' });
    expect(r.inFlight).toBe(0);
  });

  it(`refuses more than the in-flight bound locally`, async () => {
    const s = sender();
    const r = new RemoteRequests();
    r.bind(s);
    const pending = Array.from({ length: MAX_PENDING_REQUESTS }, () => r.request('a', 'cbor', Uint8Array.of(1), ctx()).catch(() => undefined));
    await expect(r.request('a', 'cbor', Uint8Array.of(1), ctx())).rejects.toMatchObject({ code: 'TOO_MANY_REQUESTS' });
    r.unbind(s);
    await Promise.all(pending);
  });
});
