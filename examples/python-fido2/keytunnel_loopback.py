"""python-fido2 over keytunnel's loopback face.

keytunnel's CTAPHID devices (`keytunnel soft --hid loopback:HOST:PORT`, `startSoftAuthenticator()` from
keytunnel/testing, the keytunnel container) can show themselves as a TCP socket on which every HID report is
exactly 64 raw bytes in each direction, with no framing. python-fido2's HID layer only needs a connection that
writes and reads such reports, so this class is all it takes: `open_device(host, port)` gives a `CtapHidDevice`
to hand to `Fido2Client`, `Ctap2`, `ClientPin`, ... exactly like a USB security key.

Tested with python-fido2 0.9.1 (Debian bookworm's python3-fido2).
"""
import socket

from fido2.hid import CtapHidDevice
from fido2.hid.base import CtapHidConnection, HidDescriptor

REPORT_SIZE = 64


class LoopbackCtapHidConnection(CtapHidConnection):
    """One HID report = exactly 64 raw bytes on the socket, both ways."""

    def __init__(self, host, port, timeout=30.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def write_packet(self, data):
        if len(data) != REPORT_SIZE:
            raise ValueError("a report is %d bytes, got %d" % (REPORT_SIZE, len(data)))
        self.sock.sendall(data)

    def read_packet(self):
        buf = b""
        while len(buf) < REPORT_SIZE:
            chunk = self.sock.recv(REPORT_SIZE - len(buf))
            if not chunk:
                raise OSError("the loopback face closed the connection")
            buf += chunk
        return buf

    def close(self):
        self.sock.close()


def open_device(host, port, timeout=30.0):
    """A CtapHidDevice on the loopback face at host:port (CTAPHID_INIT done)."""
    descriptor = HidDescriptor("loopback:%s:%d" % (host, port), 0, 0, REPORT_SIZE, REPORT_SIZE)
    return CtapHidDevice(descriptor, LoopbackCtapHidConnection(host, port, timeout))
