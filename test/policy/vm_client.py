#!/usr/bin/python3
"""A VM's ordinary FIDO client (python-fido2 0.9.1) that keeps one device open and takes steps from stdin.

Usage: /usr/bin/python3 vm_client.py HOST:PORT
Each stdin line is a JSON object {"op": ..., ...}; each answer is one JSON line on stdout:
{"ok": bool, "status": CTAP status (0 on success), ...}. The device stays open between steps, so a test can
interleave two VMs' steps exactly (A begins an enumeration, B sends its decoy, A continues, ...).

  {"op": "ready"}                                                 answers once the device is open
  {"op": "make", "rp": RP, "user": NAME, "uid": ID, "pin"?: PIN}   discoverable ES256 credential
  {"op": "setpin", "pin": PIN}
  {"op": "retries"}                                               -> "retries"
  {"op": "token", "pin": PIN, "perm": N, "rp"?: RP}               keep a pinUvAuthToken for later steps
  {"op": "assert", "rp": RP, "pin"?: bool}                        -> "users", "numberOfCredentials"
  {"op": "next_assertion"}                                        -> "user"
  {"op": "creds_begin", "rp": RP}                                 -> "user", "total"
  {"op": "creds_next"}                                            -> "user"
  {"op": "cm_raw", "sub": N}                                      credentialManagement {1: N}, no auth
"""
import hashlib
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "interop"))
from fido2_loopback import open_device  # noqa: E402

from fido2.ctap import CtapError  # noqa: E402
from fido2.ctap2 import Ctap2  # noqa: E402
from fido2.ctap2.credman import CredentialManagement  # noqa: E402
from fido2.ctap2.pin import ClientPin  # noqa: E402

CDH = hashlib.sha256(b"hostile vm test").digest()


def user_of(entity):
    return (entity or {}).get("name") or (entity or {}).get("id", b"").decode(errors="replace")


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    dev = open_device(host, int(port), 10)
    ctap = Ctap2(dev)
    pin = ClientPin(ctap)
    token = None
    cm = None
    for line in sys.stdin:
        step = json.loads(line)
        op = step["op"]
        out = {"ok": True, "status": 0}
        try:
            if op == "ready":
                pass  # the device is open (CTAPHID INIT done): the client is ready
            elif op == "make":
                kwargs = {}
                if step.get("pin"):
                    t = pin.get_pin_token(step["pin"], ClientPin.PERMISSION.MAKE_CREDENTIAL, step["rp"])
                    kwargs = {"pin_uv_param": pin.protocol.authenticate(t, CDH), "pin_uv_protocol": pin.protocol.VERSION}
                ctap.make_credential(
                    CDH,
                    {"id": step["rp"], "name": step["rp"]},
                    {"id": step["uid"].encode(), "name": step["user"], "displayName": step["user"]},
                    [{"type": "public-key", "alg": -7}],
                    options={"rk": True},
                    **kwargs,
                )
            elif op == "setpin":
                pin.set_pin(step["pin"])
            elif op == "retries":
                out["retries"] = pin.get_pin_retries()[0]
            elif op == "token":
                token = pin.get_pin_token(step["pin"], step["perm"], step.get("rp"))
                cm = CredentialManagement(ctap, pin.protocol, token)
            elif op == "assert":
                kwargs = {}
                if step.get("pin"):
                    kwargs = {"pin_uv_param": pin.protocol.authenticate(token, CDH), "pin_uv_protocol": pin.protocol.VERSION}
                a = ctap.get_assertion(step["rp"], CDH, **kwargs)
                out["users"] = [user_of(a.user)]
                out["numberOfCredentials"] = a.number_of_credentials
            elif op == "next_assertion":
                out["user"] = user_of(ctap.get_next_assertion().user)
            elif op == "creds_begin":
                r = cm.enumerate_creds_begin(hashlib.sha256(step["rp"].encode()).digest())
                out["user"] = user_of(r[CredentialManagement.RESULT.USER])
                out["total"] = r.get(CredentialManagement.RESULT.TOTAL_CREDENTIALS)
            elif op == "creds_next":
                # A VM that never got a token of its own can still send the (unauthenticated) GetNext.
                cm = cm or CredentialManagement(ctap, pin.protocol, None)
                out["user"] = user_of(cm.enumerate_creds_next()[CredentialManagement.RESULT.USER])
            elif op == "cm_raw":
                ctap.send_cbor(Ctap2.CMD.CREDENTIAL_MGMT, {1: step["sub"]})
            else:
                raise SystemExit("unknown op " + op)
        except CtapError as e:
            out["ok"] = False
            out["status"] = int(e.code)
        except Exception as e:  # a malformed answer must not hang the test: report it
            out["ok"] = False
            out["status"] = -1
            out["error"] = repr(e)
        print(json.dumps(out), flush=True)
    dev.close()


if __name__ == "__main__":
    main()
