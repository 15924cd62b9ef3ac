#!/usr/bin/python3
"""Register a passkey and sign in with it through keytunnel, from Python.

Usage: python3 ceremony.py HOST:PORT [--pin PIN]

HOST:PORT is a keytunnel loopback face: `keytunnel soft --hid loopback:127.0.0.1:8090 --approve always`, the
keytunnel container (`docker run -p 127.0.0.1:8090:8090 keytunnel`) or startSoftAuthenticator() in a Node test.
python-fido2's Fido2Client plays the browser and its Fido2Server the relying party, which verifies both
ceremonies. Prints one JSON line with what happened; exits 0 when both verified.
"""
import argparse
import json
import sys

from fido2.client import Fido2Client
from fido2.server import Fido2Server

from keytunnel_loopback import open_device

RP = {"id": "example.com", "name": "Example"}
ORIGIN = "https://example.com"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", help="HOST:PORT of a keytunnel loopback face")
    parser.add_argument("--pin", help="the authenticator's PIN (then user verification is required)")
    args = parser.parse_args()
    host, _, port = args.target.rpartition(":")

    device = open_device(host.strip("[]"), int(port))
    client = Fido2Client(device, ORIGIN)
    server = Fido2Server(RP)
    uv = "required" if args.pin else "discouraged"
    pin = {"pin": args.pin} if args.pin else {}

    user = {"id": b"python-user-1", "name": "grace@example.com", "displayName": "Grace"}
    options, state = server.register_begin(user, user_verification=uv)
    made = client.make_credential(options["publicKey"], **pin)
    auth_data = server.register_complete(state, made.client_data, made.attestation_object)
    credential = auth_data.credential_data

    options, state = server.authenticate_begin([credential], user_verification=uv)
    selection = client.get_assertion(options["publicKey"], **pin)
    response = selection.get_response(0)
    server.authenticate_complete(
        state, [credential], response.credential_id, response.client_data, response.authenticator_data, response.signature
    )
    print(
        json.dumps(
            {
                "ok": True,
                "fmt": made.attestation_object.fmt,
                "credentialId": credential.credential_id.hex(),
                "userVerified": response.authenticator_data.is_user_verified(),
                "signCount": response.authenticator_data.counter,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
