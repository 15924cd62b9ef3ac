#!/usr/bin/python3
"""One WebAuthn registration and sign-in with python-fido2 0.9.1 through a keytunnel loopback face.

Usage: /usr/bin/python3 fido2_ceremony.py HOST:PORT RP_ID

The browser's part (Fido2Client: CTAPHID over the face, makeCredential then getAssertion) and the website's
part (Fido2Server: register_begin/complete, authenticate_begin/complete, which verify the attestation signature,
the challenge, the origin and the assertion signature). Prints one JSON line: {"ok": true, "credentialId": hex,
"signCount": n, "makeCredentialMs": ms, "getAssertionMs": ms} or {"ok": false, "error": "..."}; exit code 0 exactly when both ceremonies verified.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "interop"))

from fido2.client import Fido2Client  # noqa: E402
from fido2.server import Fido2Server  # noqa: E402
from fido2_loopback import open_device  # noqa: E402


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    rp_id = sys.argv[2]
    dev = open_device(host, int(port), 30)
    server = Fido2Server({"id": rp_id, "name": "keytunnel RDP test RP"})
    client = Fido2Client(dev, "https://" + rp_id)
    user = {"id": b"rdp-user", "name": "rdp@" + rp_id, "displayName": "RDP user"}

    options, state = server.register_begin(user, user_verification="discouraged")
    t0 = time.perf_counter()
    made = client.make_credential(options["publicKey"])
    make_ms = (time.perf_counter() - t0) * 1000
    auth_data = server.register_complete(state, made.client_data, made.attestation_object)
    cred = auth_data.credential_data

    options, state = server.authenticate_begin([cred], user_verification="discouraged")
    t0 = time.perf_counter()
    selection = client.get_assertion(options["publicKey"])
    get_ms = (time.perf_counter() - t0) * 1000
    resp = selection.get_response(0)
    server.authenticate_complete(state, [cred], resp.credential_id, resp.client_data, resp.authenticator_data, resp.signature)
    print(json.dumps({
        "ok": True,
        "credentialId": cred.credential_id.hex(),
        "signCount": resp.authenticator_data.counter,
        # The client's part of each ceremony (CTAPHID to the face and back), the RP's checks excluded.
        "makeCredentialMs": make_ms,
        "getAssertionMs": get_ms,
    }))


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # the JSON line is the result either way
        print(json.dumps({"ok": False, "error": "%s: %s" % (type(e).__name__, e)}))
        sys.exit(1)
