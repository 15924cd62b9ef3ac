#!/usr/bin/python3
"""One python-fido2 0.9.1 step against a keytunnel loopback face, for the per-gateway scoping tests.

Usage: /usr/bin/python3 scope_probe.py HOST:PORT ACTION [RP_ID] [PIN]
  make RP_ID          make a discoverable ES256 credential (no PIN may be set yet)
  assert RP_ID [PIN]  getAssertion without allowList (with a PIN token when PIN is given)
  setpin PIN          set the PIN
  credman PIN         credential management: metadata + enumerate RPs
  makeuser RP_ID USER PIN   make a discoverable credential for user name USER with a PIN token
  enumbegin RP_ID PIN  enumerateCredentialsBegin only: prints "total" and the first user; leaves the sequence open
  next [decoy]        enumerateCredentialsGetNextCredential (after an unknown subcommand 0x99 first with "decoy";
                      its status is reported as "decoy")
Prints one JSON object: {"ok": bool, "status": CTAP status or 0, ...}; secrets it handled are reported under
"secrets" (hex) so the caller can check that none of them reached the agent's logs.
"""
import hashlib
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "interop"))
from fido2_loopback import open_device  # noqa: E402

from fido2 import cbor  # noqa: E402
from fido2.ctap import CtapError  # noqa: E402
from fido2.ctap2 import Ctap2  # noqa: E402
from fido2.ctap2.credman import CredentialManagement  # noqa: E402
from fido2.ctap2.pin import ClientPin  # noqa: E402


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    action = sys.argv[2]
    args = sys.argv[3:]
    dev = open_device(host, int(port), 10)
    ctap = Ctap2(dev)
    out = {"ok": True, "status": 0, "secrets": []}
    cdh = hashlib.sha256(b"scope probe").digest()
    try:
        if action == "make":
            rp = {"id": args[0], "name": args[0]}
            user = {"id": b"user-" + args[0].encode(), "name": "alice@" + args[0]}
            att = ctap.make_credential(cdh, rp, user, [{"type": "public-key", "alg": -7}], options={"rk": True})
            out["credentialId"] = att.auth_data.credential_data.credential_id.hex()
        elif action == "assert":
            kwargs = {}
            if len(args) > 1:
                pin = ClientPin(ctap)
                token = pin.get_pin_token(args[1], ClientPin.PERMISSION.GET_ASSERTION, args[0])
                out["secrets"].append(token.hex())
                kwargs = {
                    "pin_uv_param": pin.protocol.authenticate(token, cdh),
                    "pin_uv_protocol": pin.protocol.VERSION,
                }
            assertion = ctap.get_assertion(args[0], cdh, **kwargs)
            # Without UV a single credential's user comes back as its id only (CTAP 2.1 §6.2.2 step 12).
            out["users"] = [assertion.user["id"].decode()] if assertion.user else []
            out["numberOfCredentials"] = assertion.number_of_credentials
        elif action == "setpin":
            ClientPin(ctap).set_pin(args[0])
        elif action == "credman":
            pin = ClientPin(ctap)
            token = pin.get_pin_token(args[0], ClientPin.PERMISSION.CREDENTIAL_MGMT)
            out["secrets"].append(token.hex())
            cm = CredentialManagement(ctap, pin.protocol, token)
            out["existing"] = cm.get_metadata()[CredentialManagement.RESULT.EXISTING_CRED_COUNT]
            try:
                out["rps"] = [r[CredentialManagement.RESULT.RP]["id"] for r in cm.enumerate_rps()]
            except CtapError as e:
                if e.code != CtapError.ERR.NO_CREDENTIALS:
                    raise
                out["rps"] = []
        elif action == "makeuser":
            pin = ClientPin(ctap)
            token = pin.get_pin_token(args[2], ClientPin.PERMISSION.MAKE_CREDENTIAL, args[0])
            out["secrets"].append(token.hex())
            rp = {"id": args[0], "name": args[0]}
            user = {"id": b"user-" + args[1].encode(), "name": args[1]}
            ctap.make_credential(
                cdh, rp, user, [{"type": "public-key", "alg": -7}], options={"rk": True},
                pin_uv_param=pin.protocol.authenticate(token, cdh), pin_uv_protocol=pin.protocol.VERSION,
            )
        elif action == "enumbegin":
            pin = ClientPin(ctap)
            token = pin.get_pin_token(args[1], ClientPin.PERMISSION.CREDENTIAL_MGMT)
            out["secrets"].append(token.hex())
            params = {CredentialManagement.PARAM.RP_ID_HASH: hashlib.sha256(args[0].encode()).digest()}
            message = bytes([CredentialManagement.CMD.ENUMERATE_CREDS_BEGIN]) + cbor.encode(params)
            r = ctap.credential_mgmt(
                CredentialManagement.CMD.ENUMERATE_CREDS_BEGIN, params,
                pin.protocol.VERSION, pin.protocol.authenticate(token, message),
            )
            out["total"] = r[CredentialManagement.RESULT.TOTAL_CREDENTIALS]
            out["users"] = [r[CredentialManagement.RESULT.USER]["name"]]
        elif action == "next":
            if args and args[0] == "decoy":
                try:
                    ctap.credential_mgmt(0x99)
                    out["decoy"] = 0
                except CtapError as e:
                    out["decoy"] = int(e.code)
            r = ctap.credential_mgmt(CredentialManagement.CMD.ENUMERATE_CREDS_NEXT)
            out["users"] = [r[CredentialManagement.RESULT.USER]["name"]]
        else:
            raise SystemExit("unknown action " + action)
    except CtapError as e:
        out["ok"] = False
        out["status"] = int(e.code)
    finally:
        dev.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
