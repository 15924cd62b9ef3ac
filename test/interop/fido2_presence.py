#!/usr/bin/python3
"""One CTAP2 request that needs user presence, as a VM's client sends it, for the approval-dialog tests.

Usage: /usr/bin/python3 fido2_presence.py HOST:PORT selection|make-credential|get-assertion

SIGUSR1 cancels the request (python-fido2 sends CTAPHID_CANCEL, as a browser does when the user gives up).
Prints one JSON line: {"ok": true} or {"ok": false, "error": "<CTAP status name>"}.
"""
import json
import os
import signal
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fido2_loopback import RP, open_target, sha256  # noqa: E402
from fido2.ctap import CtapError  # noqa: E402
from fido2.ctap2 import Ctap2  # noqa: E402

target, op = sys.argv[1], sys.argv[2]
cancel = threading.Event()
signal.signal(signal.SIGUSR1, lambda *_: cancel.set())
ctap = Ctap2(open_target(target, 60))
user = {"id": b"user-1", "name": "alice@example.com"}
try:
    if op == "selection":
        ctap.selection(event=cancel)
    elif op == "make-credential":
        ctap.make_credential(sha256(b"challenge"), RP, user, [{"type": "public-key", "alg": -7}], event=cancel)
    elif op == "get-assertion":
        ctap.get_assertion(RP["id"], sha256(b"challenge"), options={"up": True}, event=cancel)
    else:
        raise SystemExit("unknown operation " + op)
    print(json.dumps({"ok": True}))
except CtapError as e:
    print(json.dumps({"ok": False, "error": getattr(e.code, "name", str(e.code))}))
