/**
 * `KeytunnelContainer`: the keytunnel image (the repository's Dockerfile: `keytunnel soft` on the loopback face,
 * presence approved) as a testcontainers module. `await new KeytunnelContainer(image).start()` gives a started
 * container whose `getDevice()` is the `{ host, port }` a `WebAuthnTestClient` (or python-fido2 over TCP) talks
 * to; `stop()` removes it. Readiness is the image's HEALTHCHECK (a CTAPHID_INIT answered on the face).
 *
 * Networking: by default the device port 8090 is published on an ephemeral host port, the usual testcontainers
 * way. `withHostNetwork()` runs the container in the host's network namespace instead (CI machines without a
 * bridge network): the device then listens on 127.0.0.1 at a free port, and no non-loopback face is opened.
 *
 * testcontainers starts its reaper container (Ryuk) unless TESTCONTAINERS_RYUK_DISABLED=true; where that image
 * cannot be pulled, set it and stop your containers yourself (afterAll).
 */
import net from 'node:net';
import { AbstractStartedContainer, GenericContainer, Wait, type StartedTestContainer } from 'testcontainers';
import type { DeviceAddress } from '../testing/types.ts';

/** What `docker build -t keytunnel .` produces. */
export const DEFAULT_KEYTUNNEL_IMAGE = 'keytunnel:latest';
/** The device port of the image's default command (`--hid loopback:0.0.0.0:8090`). */
export const KEYTUNNEL_DEVICE_PORT = 8090;

async function freeLoopbackPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export class KeytunnelContainer extends GenericContainer {
  private hostNetwork = false;

  constructor(image: string = DEFAULT_KEYTUNNEL_IMAGE) {
    super(image);
    this.withWaitStrategy(Wait.forHealthCheck()).withStartupTimeout(60_000);
  }

  /** Share the host's network namespace; the device listens on 127.0.0.1 at a free port. */
  withHostNetwork(): this {
    this.hostNetwork = true;
    return this;
  }

  override async start(): Promise<StartedKeytunnelContainer> {
    let device: ((started: StartedTestContainer) => DeviceAddress) | undefined;
    if (this.hostNetwork) {
      const port = await freeLoopbackPort();
      this.withNetworkMode('host').withCommand([
        'soft',
        '--hid',
        `loopback:127.0.0.1:${port}`,
        '--approve',
        'always',
        '--state-dir',
        '/home/keytunnel/state',
      ]);
      device = () => ({ host: '127.0.0.1', port });
    } else {
      this.withExposedPorts(KEYTUNNEL_DEVICE_PORT);
      device = (started) => ({ host: started.getHost(), port: started.getMappedPort(KEYTUNNEL_DEVICE_PORT) });
    }
    const started = await super.start();
    return new StartedKeytunnelContainer(started, device(started));
  }
}

export class StartedKeytunnelContainer extends AbstractStartedContainer {
  constructor(
    started: StartedTestContainer,
    private readonly device: DeviceAddress,
  ) {
    super(started);
  }

  /** The CTAPHID device's loopback face, for `new WebAuthnTestClient({ device, origin })`. */
  getDevice(): DeviceAddress {
    return { ...this.device };
  }
}
