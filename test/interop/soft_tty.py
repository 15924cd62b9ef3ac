#!/usr/bin/python3
"""Drive `keytunnel soft --approve prompt` on a real pseudo-terminal, as a person would.

Usage: /usr/bin/python3 soft_tty.py STATE_DIR

Starts `node bin/keytunnel.js soft --hid loopback:127.0.0.1:0 --state-dir STATE_DIR` with a pty as its
controlling terminal and without KEYTUNNEL_PASSPHRASE, types the new store's passphrase twice, then:
  1. makeCredential from python-fido2 over the loopback face: waits for the presence prompt, checks what it
     says (action, RP ID, user name), presses Enter -> the credential is created;
  2. getAssertion: presses 'n' at the prompt -> the client gets CTAP2_ERR_OPERATION_DENIED;
  3. getAssertion: presses Esc -> denied again;
  4. sends SIGTERM -> the process exits 0.
Prints a JSON summary as the last line of stdout (the terminal transcript goes to stderr).
"""
import json
import os
import pty
import re
import select
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fido2_loopback import open_device  # noqa: E402
from fido2.client import ClientError, Fido2Client  # noqa: E402
from fido2.ctap import CtapError  # noqa: E402
from fido2.server import Fido2Server  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PASSPHRASE = "tty pass phrase"
ANSI = re.compile(rb"\x1b\[[0-9;]*[A-Za-z]")


class Terminal:
    def __init__(self, argv, env):
        self.pid, self.master = pty.fork()
        if self.pid == 0:
            os.chdir(REPO)
            os.execvpe(argv[0], argv, env)
        self.seen = b""

    def expect(self, pattern, timeout=30.0):
        """Reads until `pattern` (a bytes regex) matches the ANSI-stripped transcript; returns the match."""
        deadline = time.time() + timeout
        rx = re.compile(pattern)
        while True:
            m = rx.search(ANSI.sub(b"", self.seen))
            if m:
                self.seen = ANSI.sub(b"", self.seen)[m.end():]
                return m
            left = deadline - time.time()
            if left <= 0:
                raise TimeoutError("no %r in terminal output: %r" % (pattern, self.seen[-500:]))
            r, _, _ = select.select([self.master], [], [], left)
            if r:
                try:
                    data = os.read(self.master, 4096)
                except OSError:
                    data = b""
                if not data:
                    raise EOFError("terminal closed while waiting for %r: %r" % (pattern, self.seen[-500:]))
                sys.stderr.write(data.decode("utf-8", "replace"))
                TRANSCRIPT.append(data)
                self.seen += data

    def type(self, text):
        os.write(self.master, text.encode())

    def wait_exit(self, timeout=20.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                r, _, _ = select.select([self.master], [], [], 0.1)
                if r:
                    data = os.read(self.master, 4096)
                    TRANSCRIPT.append(data)
            except OSError:
                pass
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return os.waitstatus_to_exitcode(status)
        os.kill(self.pid, signal.SIGKILL)
        return None


TRANSCRIPT = []


def in_thread(fn):
    box = {}

    def run():
        try:
            box["value"] = fn()
        except Exception as e:  # noqa: BLE001 - reported to the caller
            box["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, box


def main():
    state_dir = sys.argv[1]
    env = {k: v for k, v in os.environ.items() if k not in ("KEYTUNNEL_PASSPHRASE", "KEYTUNNEL_LOG_LEVEL")}
    argv = ["node", os.path.join(REPO, "bin", "keytunnel.js"), "soft", "--hid", "loopback:127.0.0.1:0",
            "--state-dir", state_dir, "--profile", "tty"]
    term = Terminal(argv, env)
    summary = {}

    term.expect(rb"creating a new encrypted store")
    term.expect(rb"passphrase for [^\r\n]*soft-tty\.kts: ")
    term.type(PASSPHRASE + "\r")
    term.expect(rb"repeat the passphrase: ")
    term.type(PASSPHRASE + "\r")
    port = int(term.expect(rb"listening on loopback:127\.0\.0\.1:(\d+)").group(1))
    summary["port"] = port

    dev = open_device("127.0.0.1", port, 60)
    client = Fido2Client(dev, "https://example.com")
    server = Fido2Server({"id": "example.com", "name": "Example"})
    user = {"id": b"user-tty", "name": "alice@example.com", "displayName": "Alice"}

    # 1. Enter approves.
    options, reg_state = server.register_begin(user)
    t, box = in_thread(lambda: client.make_credential(options["publicKey"]))
    prompt = term.expect(rb"keytunnel: ([^\r\n]*) \xe2\x80\x94 approve\? \[Enter/Esc\]\r?\n[^\r\n]*Press Enter to approve, Esc or n to deny").group(1)
    summary["makeCredentialPrompt"] = prompt.decode()
    term.type("\r")
    term.expect(rb"approved")
    t.join(30)
    if "error" in box:
        raise box["error"]
    auth_data = server.register_complete(reg_state, box["value"].client_data, box["value"].attestation_object)
    creds = [auth_data.credential_data]
    summary["made"] = True

    # 2. 'n' denies; 3. Esc denies.
    denials = []
    for key in ("n", "\x1b"):
        options, _ = server.authenticate_begin(creds)
        t, box = in_thread(lambda: client.get_assertion(options["publicKey"]))
        prompt = term.expect(rb"keytunnel: ([^\r\n]*) \xe2\x80\x94 approve\? \[Enter/Esc\]\r?\n[^\r\n]*Press Enter").group(1)
        summary["getAssertionPrompt"] = prompt.decode()
        term.type(key)
        term.expect(rb"denied")
        t.join(30)
        err = box.get("error")
        cause = getattr(err, "cause", None)
        code = getattr(cause, "code", None)
        denials.append(getattr(code, "name", repr(err)))
    summary["denials"] = denials
    dev.close()

    os.kill(term.pid, signal.SIGTERM)
    summary["exitCode"] = term.wait_exit()
    transcript = b"".join(TRANSCRIPT)
    summary["passphraseEchoed"] = PASSPHRASE.encode() in transcript
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
