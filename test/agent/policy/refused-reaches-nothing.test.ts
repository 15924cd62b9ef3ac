/**
 * Issue 11, finding 6: a request the policy refuses causes no command at all on any authenticator — not even the
 * getInfo refresh the agent sends after requests that may change getInfo (reset, config, setPIN, makeCredential), which on a
 * shared key would end another gateway's sequence. Driven through the agent's real session layer (AgentCore).
 */
import { describe, expect, it } from 'vitest';
import { AgentCore } from '../../../agent/agent.ts';
import type { AuditRecord } from '../../../agent/policy/audit.ts';
import { defaultPolicy } from '../../../agent/policy/config.ts';
import { PolicyState, withPolicy } from '../../../agent/policy/policy-authenticator.ts';
import type { Authenticator, RequestContext, RequestKind } from '../../../protocol/authenticator.ts';
import { encode, type CborValue } from '../../../protocol/cbor.ts';
import {
  CTAP2_CONFIG,
  CTAP2_ERR_KEY_STORE_FULL,
  CTAP2_ERR_OPERATION_DENIED,
  CTAP2_GET_INFO,
  CTAP2_MAKE_CREDENTIAL,
  CTAP2_RESET,
} from '../../../protocol/ctap2.ts';
import type { Frame, ResponseFrame } from '../../../protocol/tunnel.ts';
import { FakePresence } from '../../../agent/presence/fake.ts';

const quiet = { debug() {}, info() {}, warn() {}, error() {} };
const FP_B = 'bb'.repeat(32).match(/../g)!.join(':');
const GET_INFO = Uint8Array.of(0x00, 0xa1, 0x01, 0x81, 0x68, ...Buffer.from('FIDO_2_1'));

/** Records every command that reaches it; answers makeCredential with `makeCredentialStatus`, everything else OK. */
class Spy implements Authenticator {
  readonly descriptor = { id: 'spy', label: 'shared key', transport: 'hid' as const, ctap1: false, wink: false };
  readonly reached: number[] = [];
  makeCredentialStatus = 0;
  async request(_kind: RequestKind, payload: Uint8Array, _ctx: RequestContext): Promise<Uint8Array> {
    this.reached.push(payload[0]!);
    if (payload[0] === CTAP2_GET_INFO) return GET_INFO;
    if (payload[0] === CTAP2_MAKE_CREDENTIAL) return Uint8Array.of(this.makeCredentialStatus);
    return Uint8Array.of(0);
  }
}

async function connectedGateway() {
  const spy = new Spy();
  const audit: AuditRecord[] = [];
  const state = new PolicyState();
  const agent = new AgentCore({
    logger: quiet,
    view: (gateway) => (auth) =>
      withPolicy(auth, { ...defaultPolicy(gateway.fingerprint), name: gateway.name }, {
        audit: { record: (r) => audit.push(r) },
        presence: new FakePresence(),
        state,
      }),
  });
  await agent.add(spy, GET_INFO);
  const sent: Frame[] = [];
  const handlers = agent.attachGateway({ fingerprint: FP_B, name: 'customer-b', send: (f) => sent.push(f), close: () => {} });
  let nextId = 1;
  const request = async (payload: Uint8Array): Promise<Uint8Array> => {
    const requestId = nextId++;
    handlers.frame({ type: 'request', requestId, authenticatorId: 'spy', kind: 'cbor', payload });
    for (let i = 0; i < 100; i++) {
      const answer = sent.find((f): f is ResponseFrame => f.type === 'response' && f.requestId === requestId);
      if (answer) return answer.payload;
      await new Promise((r) => setTimeout(r, 5));
    }
    throw new Error(`no answer to request ${requestId}: ${JSON.stringify(sent)}`);
  };
  return { spy, audit, request, close: () => agent.close() };
}

const makeCredential = Uint8Array.of(
  CTAP2_MAKE_CREDENTIAL,
  ...encode(
    new Map<CborValue, CborValue>([
      [1, new Uint8Array(32)],
      [2, new Map<CborValue, CborValue>([['id', 'b.example']])],
      [3, new Map<CborValue, CborValue>([['id', Uint8Array.of(1)], ['name', 'u']])],
      [4, [new Map<CborValue, CborValue>([['alg', -7], ['type', 'public-key']])]],
    ]),
  ),
);

describe('a refused request reaches no authenticator', () => {
  it('reset and config refused by the policy cause no command, not even a getInfo refresh', async () => {
    const g = await connectedGateway();
    try {
      expect(await g.request(Uint8Array.of(CTAP2_RESET))).toEqual(Uint8Array.of(CTAP2_ERR_OPERATION_DENIED));
      expect(await g.request(Uint8Array.of(CTAP2_CONFIG, 0xa1, 0x01, 0x01))).toEqual(Uint8Array.of(CTAP2_ERR_OPERATION_DENIED));
      expect(g.spy.reached).toEqual([]);
      expect(g.audit.map((r) => r.decision)).toEqual(['refused-by-policy', 'refused-by-policy']);
    } finally {
      g.close();
    }
  });

  it('a makeCredential the key refuses costs no getInfo; one it accepts refreshes the cache', async () => {
    const g = await connectedGateway();
    try {
      g.spy.makeCredentialStatus = CTAP2_ERR_KEY_STORE_FULL;
      expect(await g.request(makeCredential)).toEqual(Uint8Array.of(CTAP2_ERR_KEY_STORE_FULL));
      expect(g.spy.reached).toEqual([CTAP2_MAKE_CREDENTIAL]);
      g.spy.makeCredentialStatus = 0;
      expect(await g.request(makeCredential)).toEqual(Uint8Array.of(0));
      expect(g.spy.reached).toEqual([CTAP2_MAKE_CREDENTIAL, CTAP2_MAKE_CREDENTIAL, CTAP2_GET_INFO]);
    } finally {
      g.close();
    }
  });
});
