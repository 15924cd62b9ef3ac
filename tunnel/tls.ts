/**
 * The tunnel's transport: TLS 1.3 only, mutual authentication with self-signed certificates pinned by SHA-256
 * fingerprint (like SSH known_hosts / WireGuard keys). Either side may listen or dial; both present their
 * identity's certificate, and both check the peer's certificate fingerprint against the trust set in code
 * (`rejectUnauthorized: false` only switches off CA-chain validation, which means nothing for self-signed
 * certificates — the pin is the check). An unknown peer is refused with a log line naming the fingerprint it
 * presented and how to trust it. TCP_NODELAY is always set (CTAP messages are small and latency-bound).
 *
 * `listen` and `dial` hand back a `PeerConnection` whose HELLO exchange has completed. `dial` runs over TCP or over
 * any byte stream (a StreamOpener: an RDP virtual channel), with the same TLS, pinning and HELLO.
 *
 * A listener bounds what it holds (tunnel/admission.ts): connections still authenticating are capped and the oldest
 * is evicted when a new one arrives (sshd MaxStartups), the TLS handshake must finish within a few seconds, and each
 * trusted peer holds at most a few connections (a newer one replaces its oldest). So whoever can reach the port can
 * neither fill it nor make a trusted peer wait for a slot.
 *
 * Note on TLS 1.3: the client finishes its handshake before the server has checked the client certificate, so a
 * dialer the listener does not trust sees the connection closed before HELLO; `dial` reports that as
 * PeerRefusedError, naming our own fingerprint (the one the other side has to trust).
 */
import net, { type AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import type { Logger } from '../protocol/logger.ts';
import type { TunnelRole } from '../protocol/tunnel.ts';
import { Admission, type Slot } from './admission.ts';
import { ConnectionClosedError, PeerConnection, type ConnectionOptions } from './connection.ts';
import { fingerprintOf } from './fingerprint.ts';
import type { Identity } from './identity.ts';
import type { TrustSet } from './trust.ts';
import { KeytunnelError } from '../protocol/errors.ts';

export interface Endpoint {
  readonly host: string;
  readonly port: number;
}

export interface TunnelOptions {
  /** Our role, announced in HELLO. */
  readonly role: TunnelRole;
  /** Our display name, announced in HELLO. */
  readonly name: string;
  readonly log: Logger;
  /** TLS handshake timeout (ms, default 5 s). */
  readonly handshakeTimeoutMs?: number;
  /** Heartbeat, HELLO timeout and buffer bounds for each connection. */
  readonly connection?: Omit<ConnectionOptions, 'role' | 'name' | 'log'>;
}

export interface ListenOptions extends TunnelOptions {
  /**
   * Most connections still authenticating (TCP accepted, no trusted certificate yet); beyond it the oldest is
   * dropped. Default DEFAULT_MAX_UNAUTHENTICATED (32).
   */
  readonly maxUnauthenticated?: number;
  /** Most connections per trusted peer fingerprint; a newer one replaces the oldest. Default DEFAULT_MAX_CONNECTIONS_PER_PEER (3). */
  readonly maxConnectionsPerPeer?: number;
}

/**
 * TLS 1.3 with mutual authentication takes the server 1.5 round trips after the TCP handshake (ClientHello in;
 * ServerHello…Finished out; client Certificate…Finished in): 5 s leaves room for a 3 s round trip (a congested
 * satellite or mobile link) while an idle socket occupies an unauthenticated slot for at most that long.
 */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 5000;
/** How often the listener logs floods of failed or evicted would-be peers (one line per interval, with a count). */
const FLOOD_LOG_INTERVAL_MS = 10_000;

/** The peer presented a certificate whose fingerprint is not trusted (or none). */
export class UntrustedPeerError extends KeytunnelError {
  override readonly name = 'UntrustedPeerError';
  readonly code = 'UNTRUSTED_PEER';
  constructor(
    /** The fingerprint the peer presented, or null when it presented no certificate. */
    readonly fingerprint: string | null,
    message: string,
  ) {
    super(message);
  }
}

/** The peer closed the connection during the handshake / HELLO: most likely it does not trust us. */
export class PeerRefusedError extends KeytunnelError {
  override readonly name = 'PeerRefusedError';
  readonly code = 'PEER_REFUSED';
}

export interface TunnelServer {
  /** The bound address (port 0 resolves to the real port). */
  address(): AddressInfo;
  /** Stop listening and close every connection it accepted. */
  close(): Promise<void>;
}

/** The TLS options both sides share: TLS 1.3 only, our certificate, no CA validation (pinning instead). */
function tlsBase(identity: Identity): tls.SecureContextOptions & tls.CommonConnectionOptions {
  return {
    key: identity.keyPem,
    cert: identity.certPem,
    minVersion: 'TLSv1.3',
    maxVersion: 'TLSv1.3',
    rejectUnauthorized: false,
  };
}

/** The advice printed when a peer is refused. */
export function trustAdvice(fingerprint: string): string {
  return `if this is your peer, trust it: run with --trust ${fingerprint} (or \`keytunnel trust add ${fingerprint}\`)`;
}

/**
 * Check the peer certificate of an established TLS socket against the trust set; returns its fingerprint or
 * throws UntrustedPeerError (after logging the refusal).
 */
function verifyPeer(socket: tls.TLSSocket, trust: TrustSet, log: Logger, what: string, where?: string): string {
  const cert = socket.getPeerCertificate(false);
  const raw = cert && 'raw' in cert ? cert.raw : undefined;
  const at = where ? ` at ${where}` : '';
  if (!raw || raw.length === 0) {
    log.warn({ remote: socket.remoteAddress }, `refusing ${what}${at}: it presented no certificate`);
    throw new UntrustedPeerError(null, `${what}${at} presented no certificate`);
  }
  const fingerprint = fingerprintOf(raw);
  if (!trust.has(fingerprint)) {
    // Log line format (relied on by operators and tests): "refusing unknown <role> with fingerprint <fp> ...".
    const message = `unknown ${what} with fingerprint ${fingerprint}${at}; ${trustAdvice(fingerprint)}`;
    log.warn({ fingerprint, remote: socket.remoteAddress }, `refusing ${message}`);
    throw new UntrustedPeerError(fingerprint, message);
  }
  return fingerprint;
}

function peerWord(options: TunnelOptions): string {
  return options.role === 'agent' ? 'gateway' : 'agent';
}

/**
 * Listen on `endpoint`; every connecting peer must present a trusted certificate and complete HELLO, then
 * `onPeer` receives its connection. Refused and failed connections are logged and dropped.
 */
export async function listen(
  endpoint: Endpoint,
  identity: Identity,
  trust: TrustSet,
  onPeer: (peer: PeerConnection) => void,
  options: ListenOptions,
): Promise<TunnelServer> {
  const { log } = options;
  const what = peerWord(options);
  const open = new Set<PeerConnection>();
  const sockets = new Set<net.Socket>();
  const admission = new Admission({ maxUnauthenticated: options.maxUnauthenticated, maxPerPeer: options.maxConnectionsPerPeer });
  // The TLS socket handed to 'secureConnection' wraps the raw socket of 'connection'; both carry the same TCP 4-tuple.
  const slots = new Map<string, Slot>();
  const evictionWarn = limitedWarn(log, FLOOD_LOG_INTERVAL_MS);
  const handshakeWarn = limitedWarn(log, FLOOD_LOG_INTERVAL_MS);
  const server = tls.createServer({
    ...tlsBase(identity),
    requestCert: true,
    handshakeTimeout: options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS,
  });
  // No server.maxConnections: Node would refuse new sockets outright once it is reached, trusted peers included.
  server.on('connection', (socket: net.Socket) => {
    socket.setNoDelay(true);
    const key = tupleKey(socket);
    if (key === undefined) {
      socket.destroy();
      return;
    }
    sockets.add(socket);
    const { slot, evicted } = admission.accept(() => socket.destroy());
    slots.set(key, slot);
    socket.once('close', () => {
      sockets.delete(socket);
      admission.release(slot);
      if (slots.get(key) === slot) slots.delete(key);
    });
    if (evicted > 0) {
      evictionWarn(
        { unauthenticated: admission.pendingCount },
        `too many connections waiting to authenticate as a ${what}; dropped the oldest (someone may be flooding this port)`,
      );
    }
  });
  server.on('tlsClientError', (err: Error, socket: tls.TLSSocket) => {
    handshakeWarn({ remote: socket.remoteAddress, err: err.message }, `TLS handshake with a would-be ${what} failed`);
    // Node only ends the socket (a handshake timeout included) and waits for the client to close its side; a client
    // that never does would keep it. Release it now.
    socket.destroy();
  });
  server.on('secureConnection', (socket: tls.TLSSocket) => {
    socket.setNoDelay(true);
    const key = tupleKey(socket);
    const slot = key === undefined ? undefined : slots.get(key);
    if (slot === undefined) {
      socket.destroy(); // evicted or closed meanwhile
      return;
    }
    socket.once('close', () => admission.release(slot));
    let fingerprint: string;
    try {
      fingerprint = verifyPeer(socket, trust, log, what);
    } catch {
      socket.destroy();
      return;
    }
    slot.evict = (reason) => {
      log.info({ fingerprint }, `dropping a connection from a ${what} before HELLO: ${reason}`);
      socket.destroy();
    };
    if (!admission.authenticate(slot, fingerprint)) {
      socket.destroy();
      return;
    }
    PeerConnection.open(socket, fingerprint, { ...options.connection, role: options.role, name: options.name, log }).then(
      (conn) => {
        open.add(conn);
        void conn.closed.then(() => {
          open.delete(conn);
          admission.release(slot);
        });
        slot.evict = (reason) => conn.close(reason);
        log.info({ fingerprint, name: conn.name, remote: socket.remoteAddress }, `${what} connected`);
        onPeer(conn);
      },
      (err: unknown) => {
        // The connection has already closed itself (gracefully, so a final ERROR frame still reaches the peer).
        admission.release(slot);
        log.warn({ fingerprint, err: (err as Error).message }, `${what} failed the tunnel HELLO`);
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(endpoint.port, endpoint.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => log.error({ err: err.message }, 'tunnel listener error'));
  const address = server.address() as AddressInfo;
  log.info({ host: address.address, port: address.port, fingerprint: identity.fingerprint }, 'tunnel listening');
  return {
    address: () => address,
    close: async () => {
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const conn of open) conn.close('shutting down');
      for (const socket of sockets) socket.destroy();
      await stopped;
    },
  };
}

/** The TCP 4-tuple of a connected socket (undefined once it is closed). */
function tupleKey(socket: net.Socket): string | undefined {
  const { localAddress, localPort, remoteAddress, remotePort } = socket;
  if (remoteAddress === undefined || remotePort === undefined) return undefined;
  return `${localAddress}|${localPort}|${remoteAddress}|${remotePort}`;
}

/**
 * A warning that anyone on the network can trigger at will is logged at most once per `intervalMs`; the next line
 * says how many were left out.
 */
function limitedWarn(log: Logger, intervalMs: number): (obj: object, msg: string) => void {
  let last = -Infinity;
  let suppressed = 0;
  return (obj, msg) => {
    const now = performance.now();
    if (now - last < intervalMs) {
      suppressed++;
      return;
    }
    last = now;
    log.warn(suppressed > 0 ? { ...obj, suppressed } : obj, msg);
    suppressed = 0;
  };
}

/**
 * Something that opens a byte stream to the peer other than a TCP endpoint (an RDP virtual channel,
 * tunnel/transports/): TLS, pinning and HELLO run over it unchanged, and its end-of-file is the connection lost.
 */
export interface StreamOpener {
  /** For log lines and errors, e.g. `RDP virtual channel "keytunnel"`. */
  readonly description: string;
  /** Open one stream (rejects when the transport is unavailable). */
  open(): Promise<Duplex>;
}

function isStreamOpener(target: Endpoint | StreamOpener): target is StreamOpener {
  return typeof (target as StreamOpener).open === 'function';
}

/** How a dial target is named in log lines and errors. */
export function describeDialTarget(target: Endpoint | StreamOpener): string {
  return isStreamOpener(target) ? target.description : `${target.host}:${target.port}`;
}

/** TLS client handshake over TCP to `endpoint`, or over a stream from `opener`. */
async function tlsClient(target: Endpoint | StreamOpener, identity: Identity, timeoutMs: number): Promise<tls.TLSSocket> {
  const where = describeDialTarget(target);
  const raw = isStreamOpener(target) ? await target.open() : undefined;
  return new Promise<tls.TLSSocket>((resolve, reject) => {
    const s = raw
      ? tls.connect({ ...tlsBase(identity), socket: raw })
      : tls.connect({ ...tlsBase(identity), host: (target as Endpoint).host, port: (target as Endpoint).port });
    s.setNoDelay(true);
    const timer = setTimeout(() => {
      s.destroy();
      raw?.destroy();
      reject(new Error(`TLS handshake with ${where} timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    s.once('secureConnect', () => {
      clearTimeout(timer);
      s.off('error', onError);
      raw?.off('close', onRawClose);
      resolve(s);
    });
    const onError = (err: Error): void => {
      clearTimeout(timer);
      s.destroy();
      raw?.destroy();
      reject(err);
    };
    // A stream that ends before the handshake completes (an RDP channel closed under us) fails the dial.
    const onRawClose = (): void => onError(new Error(`${where} closed during the TLS handshake`));
    s.once('error', onError);
    raw?.once('close', onRawClose);
  });
}

/**
 * Connect to a listening peer at `target` (a TCP endpoint, or any byte stream a StreamOpener makes), check its
 * certificate against the trust set and complete HELLO. Rejects with UntrustedPeerError (unknown peer),
 * PeerRefusedError (the peer closed on us — likely it does not trust our fingerprint), ConnectionClosedError (HELLO
 * failed), the transport's error (e.g. ECONNREFUSED, a refused RDP channel) or a handshake timeout.
 */
export async function dial(
  target: Endpoint | StreamOpener,
  identity: Identity,
  trust: TrustSet,
  options: TunnelOptions,
): Promise<PeerConnection> {
  const { log } = options;
  const what = peerWord(options);
  const where = describeDialTarget(target);
  const socket = await tlsClient(target, identity, options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS);
  let fingerprint: string;
  try {
    // Name the address: a known endpoint presenting an unknown fingerprint is a changed (re-created or spoofed) peer.
    fingerprint = verifyPeer(socket, trust, log, what, where);
  } catch (err) {
    socket.destroy();
    throw err;
  }
  try {
    return await PeerConnection.open(socket, fingerprint, { ...options.connection, role: options.role, name: options.name, log });
  } catch (err) {
    if (err instanceof ConnectionClosedError && (err.info.reason === 'remote' || err.info.reason === 'socket-error')) {
      const message =
        `the ${what} at ${where} (fingerprint ${fingerprint}) closed the connection before ` +
        `HELLO; it probably does not trust this installation yet: on the ${what}, trust ${identity.fingerprint}`;
      log.warn({ fingerprint, ours: identity.fingerprint }, message);
      throw new PeerRefusedError(message);
    }
    throw err;
  }
}
