#!/usr/bin/python3
"""Drive a keytunnel CTAPHID device over the TCP loopback face with python-fido2 0.9.1.

Usage: /usr/bin/python3 fido2_loopback.py HOST:PORT|/dev/hidrawN [--reset-first] [--timeout SECONDS]
                                         [--persisted PIN]

The loopback face carries raw 64-byte HID reports in each direction, so a `CtapHidConnection` over a TCP
socket is all python-fido2 needs (its Linux backend does the same over /dev/hidraw). The target must be a
fresh authenticator (no PIN set) that approves user presence without asking (`--approve always`);
--reset-first issues authenticatorReset first.

Checks, each recorded in the JSON summary printed as the last line of stdout:
  CTAPHID INIT/PING, Ctap2 getInfo, CTAP1/U2F register/authenticate (+ check-only and wrong-AppID),
  Fido2Client make/get without PIN (verified by Fido2Server), ClientPin with protocol 1 and 2 (set PIN,
  retries, wrong PIN, get token, change PIN), Fido2Client make/get with PIN, rk, hmac-secret, credProtect,
  EdDSA, and CredentialManagement (metadata, enumerate RPs/credentials, delete) with both protocols.
The exit code is 0 exactly when every check passed.
"""
import argparse
import hashlib
import json
import os
import sys
import traceback

from fido2.attestation import Attestation
from fido2.client import Fido2Client
from fido2.ctap import CtapError
from fido2.ctap1 import APDU, ApduError, Ctap1
from fido2.ctap2 import Ctap2
from fido2.ctap2.credman import CredentialManagement
from fido2.ctap2.extensions import CredProtectExtension
from fido2.ctap2.pin import ClientPin, PinProtocolV1, PinProtocolV2
from fido2.hid import CAPABILITY
from fido2.server import Fido2Server
from fido2.webauthn import PublicKeyCredentialCreationOptions, PublicKeyCredentialRequestOptions

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples", "python-fido2"))
from keytunnel_loopback import open_device as open_loopback_device  # noqa: E402

RP = {"id": "example.com", "name": "Example RP"}
ORIGIN = "https://example.com"
PIN1 = "1234"
PIN2 = "567890"
ES256 = -7
EDDSA = -8


def open_device(host, port, timeout):
    """The loopback connection users get from examples/python-fido2 (so the suite runs exactly that class)."""
    return open_loopback_device(host, port, timeout)


def open_target(target, timeout):
    """A /dev/hidraw* path goes through python-fido2's own Linux backend; HOST:PORT through the TCP connection."""
    if target.startswith("/dev/"):
        from fido2.hid import open_device as open_hidraw

        return open_hidraw(target)
    host, _, port = target.rpartition(":")
    return open_device(host.strip("[]"), int(port), timeout)


def sha256(data):
    return hashlib.sha256(data).digest()


def err_name(e):
    code = e.code
    return getattr(code, "name", str(code))


class Checks:
    def __init__(self):
        self.results = []

    def run(self, name, fn):
        """Runs one check; returns its value, or None when it failed (recorded with the reason)."""
        try:
            value = fn()
            self.results.append({"name": name, "ok": True})
            return value if value is not None else True
        except Exception as e:  # noqa: BLE001 - every failure is reported, none is fatal
            sys.stderr.write("check %s failed:\n%s\n" % (name, traceback.format_exc()))
            self.results.append({"name": name, "ok": False, "error": "%s: %s" % (type(e).__name__, e)})
            return None

    def skip(self, name, reason):
        self.results.append({"name": name, "ok": False, "error": "not run: " + reason})


def expect(cond, message):
    if not cond:
        raise AssertionError(message)


def expect_ctap_error(fn, code, message):
    try:
        fn()
    except CtapError as e:
        expect(e.code == code, "%s: expected %s, got %s" % (message, code.name, err_name(e)))
        return
    raise AssertionError("%s: expected %s, got success" % (message, code.name))


def verify_attestation(att_obj, client_data_hash):
    """Verifies the attestation statement (packed self/basic attestation or none); returns its format."""
    fmt = att_obj.fmt
    if fmt != "none":
        Attestation.for_type(fmt)().verify(att_obj.att_statement, att_obj.auth_data, client_data_hash)
    return fmt


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", help="HOST:PORT of a loopback face, or a /dev/hidraw* path (uhid, usbip)")
    parser.add_argument("--reset-first", action="store_true")
    parser.add_argument("--timeout", type=float, default=20.0)
    parser.add_argument(
        "--persisted",
        metavar="PIN",
        help="instead of the full run, check a restarted authenticator: PIN set, resident credentials listed, "
        "each one still signs (verified against the public key credential management reports)",
    )
    args = parser.parse_args()
    checks = Checks()
    summary = {"target": args.target, "fido2": __import__("fido2").__version__}
    state = {}

    dev = checks.run("ctaphid-init", lambda: open_target(args.target, args.timeout))
    if dev is None:
        return finish(summary, checks)
    summary["ctaphid"] = {
        "version": dev.version,
        "deviceVersion": list(dev.device_version),
        "capabilities": dev.capabilities,
    }

    def ping():
        payload = os.urandom(200)  # four packets each way
        expect(dev.ping(payload) == payload, "echo differs")

    checks.run("ctaphid-ping", ping)

    if args.reset_first:
        checks.run("ctap2-reset", lambda: Ctap2(dev).reset())

    # ---- getInfo --------------------------------------------------------------------------------------------
    def get_info():
        ctap2 = Ctap2(dev)
        info = ctap2.get_info()
        summary["info"] = {
            "versions": list(info.versions),
            "extensions": list(info.extensions),
            "options": dict(info.options),
            "aaguid": info.aaguid.hex(),
            "pinUvAuthProtocols": list(info.pin_uv_protocols),
            "maxMsgSize": info.max_msg_size,
        }
        expect("FIDO_2_0" in info.versions, "FIDO_2_0 missing from versions")
        expect("hmac-secret" in info.extensions, "hmac-secret not advertised")
        expect("credProtect" in info.extensions, "credProtect not advertised")
        expect(info.options.get("rk") is True, "rk option not true")
        if not args.persisted:
            expect(info.options.get("clientPin") is False, "the target must be fresh (clientPin false)")
        expect(info.options.get("credMgmt") is True, "credMgmt not supported")
        expect(1 in info.pin_uv_protocols and 2 in info.pin_uv_protocols, "both PIN protocols required")
        expect(len(info.aaguid) == 16, "aaguid length")
        state["ctap2"] = ctap2
        return ctap2

    ctap2 = checks.run("ctap2-get-info", get_info)
    if ctap2 is None:
        return finish(summary, checks)

    if args.persisted:
        summary["persisted"] = checks.run("persisted-state", lambda: check_persisted(dev, ctap2, args.persisted))
        dev.close()
        return finish(summary, checks)

    # ---- CTAP1 / U2F (before a PIN exists) -------------------------------------------------------------------
    u2f_supported = not CAPABILITY.NMSG.supported(dev.capabilities)
    summary["u2f"] = u2f_supported
    if u2f_supported:

        def u2f():
            ctap1 = Ctap1(dev)
            expect(ctap1.get_version() == "U2F_V2", "U2F version")
            app = sha256(b"https://u2f.example.com")
            chal = sha256(b"register challenge")
            reg = ctap1.register(chal, app)
            reg.verify(app, chal)
            counters = []
            for i in range(2):
                c = sha256(b"auth challenge %d" % i)
                sig = ctap1.authenticate(c, app, reg.key_handle)
                sig.verify(app, c, reg.public_key)
                expect(sig.user_presence & 1 == 1, "user presence bit")
                counters.append(sig.counter)
            expect(counters[1] > counters[0], "U2F counter did not increase: %s" % counters)
            try:
                ctap1.authenticate(chal, app, reg.key_handle, check_only=True)
                raise AssertionError("check-only answered success")
            except ApduError as e:
                expect(e.code == APDU.USE_NOT_SATISFIED, "check-only: SW %04x" % e.code)
            try:
                ctap1.authenticate(chal, sha256(b"https://other.example"), reg.key_handle)
                raise AssertionError("a key handle worked for another AppID")
            except ApduError as e:
                expect(e.code == APDU.WRONG_DATA, "wrong AppID: SW %04x" % e.code)
            return {"keyHandleLength": len(reg.key_handle), "counters": counters}

        summary["u2fResult"] = checks.run("ctap1-register-authenticate", u2f)
        if "U2F_V2" not in summary["info"]["versions"]:
            checks.results.append({"name": "ctap1-version-advertised", "ok": False, "error": "U2F_V2 missing"})

    server = Fido2Server(RP)

    def make(client, user, pin=None, rk=False, uv="discouraged", algs=None, extensions=None):
        options, reg_state = server.register_begin(user, resident_key=rk, user_verification=uv)
        opts = options["publicKey"]
        params = opts.pub_key_cred_params if algs is None else [{"type": "public-key", "alg": a} for a in algs]
        opts = PublicKeyCredentialCreationOptions(
            opts.rp,
            opts.user,
            opts.challenge,
            params,
            authenticator_selection=opts.authenticator_selection,
            extensions=extensions,
        )
        result = client.make_credential(opts, pin=pin) if pin else client.make_credential(opts)
        auth_data = server.register_complete(reg_state, result.client_data, result.attestation_object)
        fmt = verify_attestation(result.attestation_object, result.client_data.hash)
        return auth_data, result, fmt

    def get(client, creds, pin=None, uv="discouraged", extensions=None, allow=True):
        options, auth_state = server.authenticate_begin(creds if allow else None, user_verification=uv)
        opts = options["publicKey"]
        opts = PublicKeyCredentialRequestOptions(
            opts.challenge,
            rp_id=opts.rp_id,
            allow_credentials=opts.allow_credentials,
            user_verification=opts.user_verification,
            extensions=extensions,
        )
        selection = client.get_assertion(opts, pin=pin) if pin else client.get_assertion(opts)
        responses = []
        for i in range(len(selection.get_assertions())):
            resp = selection.get_response(i)
            server.authenticate_complete(
                auth_state, creds, resp.credential_id, resp.client_data, resp.authenticator_data, resp.signature
            )
            responses.append(resp)
        return responses

    # ---- WebAuthn without PIN ---------------------------------------------------------------------------------
    def webauthn_no_pin():
        client = Fido2Client(dev, ORIGIN)
        user = {"id": b"user-nopin", "name": "nopin@example.com", "displayName": "No PIN"}
        auth_data, _, fmt = make(client, user, algs=[ES256])
        cred = auth_data.credential_data
        expect(cred.public_key.ALGORITHM == ES256, "ES256 key expected")
        r1 = get(client, [cred])[0]
        r2 = get(client, [cred])[0]
        expect(r1.credential_id == cred.credential_id, "credential id")
        expect(r2.authenticator_data.counter > r1.authenticator_data.counter, "sign counter did not increase")
        expect(r1.authenticator_data.is_user_present(), "UP flag")
        expect(not r1.authenticator_data.is_user_verified(), "UV flag set without PIN")
        state["nopin_cred"] = cred
        return {"attestation": fmt, "credentialIdLength": len(cred.credential_id)}

    summary["noPin"] = checks.run("webauthn-make-get-no-pin", webauthn_no_pin)

    # ---- ClientPin, both protocols ------------------------------------------------------------------------------
    def pin_v1_set():
        cp1 = ClientPin(ctap2, PinProtocolV1())
        cp1.set_pin(PIN1)
        expect(ctap2.get_info().options.get("clientPin") is True, "clientPin not true after set")
        expect(cp1.get_pin_retries()[0] == 8, "retries after set")
        # CTAP 2.1 §6.5.5.6 setPIN: "If a PIN has already been set, authenticator returns CTAP2_ERR_PIN_AUTH_INVALID".
        expect_ctap_error(lambda: cp1.set_pin(PIN2), CtapError.ERR.PIN_AUTH_INVALID, "setPin twice")
        token = cp1.get_pin_token(PIN1, ClientPin.PERMISSION.GET_ASSERTION, RP["id"])
        expect(len(token) == 32, "v1 token length %d" % len(token))

    pin_set = checks.run("clientpin-v1-set-pin-token", pin_v1_set)

    def pin_retries():
        cp2 = ClientPin(ctap2, PinProtocolV2())
        expect_ctap_error(
            lambda: cp2.get_pin_token("0000", ClientPin.PERMISSION.GET_ASSERTION, RP["id"]),
            CtapError.ERR.PIN_INVALID,
            "wrong PIN",
        )
        left = cp2.get_pin_retries()[0]
        expect(left == 7, "retries after one wrong PIN: %d" % left)
        cp2.get_pin_token(PIN1, ClientPin.PERMISSION.GET_ASSERTION, RP["id"])
        expect(cp2.get_pin_retries()[0] == 8, "retries not reset by the correct PIN")
        return {"afterWrong": left}

    def pin_change():
        cp2 = ClientPin(ctap2, PinProtocolV2())
        cp2.change_pin(PIN1, PIN2)
        expect_ctap_error(
            lambda: cp2.get_pin_token(PIN1, ClientPin.PERMISSION.GET_ASSERTION, RP["id"]),
            CtapError.ERR.PIN_INVALID,
            "old PIN after change",
        )
        t2 = cp2.get_pin_token(PIN2, ClientPin.PERMISSION.GET_ASSERTION, RP["id"])
        expect(len(t2) == 32, "v2 token length %d" % len(t2))
        t1 = ClientPin(ctap2, PinProtocolV1()).get_pin_token(PIN2, ClientPin.PERMISSION.GET_ASSERTION, RP["id"])
        expect(len(t1) == 32, "v1 token after change")

    if pin_set:
        summary["pinRetries"] = checks.run("clientpin-v2-wrong-pin-retries", pin_retries)
        pin_changed = checks.run("clientpin-v2-change-pin", pin_change)
    else:
        checks.skip("clientpin-v2-wrong-pin-retries", "no PIN set")
        checks.skip("clientpin-v2-change-pin", "no PIN set")
        pin_changed = None
    pin = PIN2 if pin_changed else PIN1

    # ---- WebAuthn with PIN: rk, hmac-secret, credProtect, EdDSA --------------------------------------------------
    def webauthn_pin():
        client = Fido2Client(dev, ORIGIN)
        user = {"id": b"user-alice", "name": "alice@example.com", "displayName": "Alice"}
        auth_data, result, fmt = make(
            client,
            user,
            pin=pin,
            rk=True,
            uv="required",
            algs=[ES256],
            extensions={
                "hmacCreateSecret": True,
                # 0.9.1 looks the policy up as an enum member (list(POLICY).index(policy)), not by its string.
                "credentialProtectionPolicy": CredProtectExtension.POLICY.OPTIONAL_WITH_LIST,
            },
        )
        expect(auth_data.is_user_verified(), "UV flag after PIN")
        expect(result.extension_results.get("hmacCreateSecret") is True, "hmacCreateSecret output")
        expect(auth_data.extensions.get("credProtect") == 2, "credProtect in authData: %r" % auth_data.extensions)
        cred = auth_data.credential_data
        state["alice"] = cred

        salt1, salt2 = os.urandom(32), os.urandom(32)
        a = get(client, [cred], pin=pin, uv="required", extensions={"hmacGetSecret": {"salt1": salt1}})[0]
        b = get(client, [cred], pin=pin, uv="required", extensions={"hmacGetSecret": {"salt1": salt1, "salt2": salt2}})[0]
        c = get(client, [cred], pin=pin, uv="required", extensions={"hmacGetSecret": {"salt1": salt2}})[0]
        out_a = a.extension_results["hmacGetSecret"]["output1"]
        out_b = b.extension_results["hmacGetSecret"]
        out_c = c.extension_results["hmacGetSecret"]["output1"]
        expect(len(out_a) == 32, "hmac output length")
        expect(out_b["output1"] == out_a, "hmac-secret not deterministic for the same salt")
        expect(out_b["output2"] == out_c, "salt2 output differs from the same salt as salt1")
        expect(out_a != out_c, "different salts gave the same output")
        expect(a.authenticator_data.is_user_verified(), "UV in assertion")
        return {"attestation": fmt}

    summary["withPin"] = checks.run("webauthn-rk-hmac-secret-credprotect", webauthn_pin) if pin_set else None

    def cred_protect_rules():
        alice = state["alice"]
        cdh = sha256(b"client data")
        # credProtect level 2: usable without UV when listed in allowList...
        ok = ctap2.get_assertion(RP["id"], cdh, [{"type": "public-key", "id": alice.credential_id}])
        expect(ok.credential["id"] == alice.credential_id, "listed level-2 credential")
        # ...but not discoverable without UV (CTAP 2.1 §12.1 credProtect).
        try:
            r = ctap2.get_assertion(RP["id"], cdh)
            expect(r.credential["id"] != alice.credential_id, "level-2 credential discovered without UV")
        except CtapError as e:
            expect(e.code == CtapError.ERR.NO_CREDENTIALS, "discoverable without UV: %s" % err_name(e))
        # Level 3 (userVerificationRequired): invisible without UV even when listed.
        client = Fido2Client(dev, ORIGIN)
        user = {"id": b"user-bob", "name": "bob@example.com", "displayName": "Bob"}
        auth_data, _, _ = make(
            client, user, pin=pin, rk=True, uv="required", algs=[ES256],
            extensions={"credentialProtectionPolicy": CredProtectExtension.POLICY.REQUIRED},
        )
        expect(auth_data.extensions.get("credProtect") == 3, "credProtect 3 in authData")
        bob = auth_data.credential_data
        state["bob"] = bob
        expect_ctap_error(
            lambda: ctap2.get_assertion(RP["id"], cdh, [{"type": "public-key", "id": bob.credential_id}]),
            CtapError.ERR.NO_CREDENTIALS,
            "level-3 credential without UV",
        )
        found = get(client, [bob], pin=pin, uv="required")[0]
        expect(found.credential_id == bob.credential_id, "level-3 credential with UV")

    if state.get("alice"):
        checks.run("credprotect-levels", cred_protect_rules)
    else:
        checks.skip("credprotect-levels", "no resident credential")

    def eddsa():
        client = Fido2Client(dev, ORIGIN)
        user = {"id": b"user-ed", "name": "ed@example.com", "displayName": "Ed"}
        auth_data, _, fmt = make(client, user, pin=pin, rk=True, uv="required", algs=[EDDSA])
        cred = auth_data.credential_data
        expect(cred.public_key.ALGORITHM == EDDSA, "EdDSA key expected, got %r" % cred.public_key.ALGORITHM)
        get(client, [cred], pin=pin, uv="required")
        state["ed"] = cred
        return {"attestation": fmt}

    summary["eddsa"] = checks.run("webauthn-eddsa", eddsa) if pin_set else None

    def discoverable():
        client = Fido2Client(dev, ORIGIN)
        creds = [c for c in (state.get("alice"), state.get("bob"), state.get("ed")) if c]
        responses = get(client, creds, pin=pin, uv="required", allow=False)
        users = sorted(r.user_handle for r in responses)
        expect(len(responses) == len(creds), "discoverable count %d != %d" % (len(responses), len(creds)))
        return {"users": [u.decode() for u in users]}

    summary["discoverable"] = checks.run("webauthn-discoverable", discoverable) if state.get("alice") else None

    # ---- Credential management, both protocols --------------------------------------------------------------------
    def credman(protocol):
        def run():
            cp = ClientPin(ctap2, protocol())
            token = cp.get_pin_token(pin, ClientPin.PERMISSION.CREDENTIAL_MGMT)
            cm = CredentialManagement(ctap2, cp.protocol, token)
            meta = cm.get_metadata()
            existing = meta[CredentialManagement.RESULT.EXISTING_CRED_COUNT]
            remaining = meta[CredentialManagement.RESULT.MAX_REMAINING_COUNT]
            expect(remaining > 0, "no room left")
            rps = cm.enumerate_rps()
            rp_ids = [rp[CredentialManagement.RESULT.RP]["id"] for rp in rps]
            expect(RP["id"] in rp_ids, "example.com not enumerated: %r" % rp_ids)
            creds = cm.enumerate_creds(sha256(RP["id"].encode()))
            expect(len(creds) == existing, "enumerated %d, metadata says %d" % (len(creds), existing))
            return cm, existing, remaining, creds

        return run

    def credman_v1():
        cm, existing, remaining, creds = credman(PinProtocolV1)()
        expected = len([c for c in (state.get("alice"), state.get("bob"), state.get("ed")) if c])
        expect(existing == expected, "existing %d, created %d" % (existing, expected))
        users = sorted(c[CredentialManagement.RESULT.USER]["name"] for c in creds)
        return {"existing": existing, "remaining": remaining, "users": users}

    def credman_v2_delete():
        cm, existing, _, creds = credman(PinProtocolV2)()
        victim = state["bob"]
        cm.delete_cred({"type": "public-key", "id": victim.credential_id})
        after = cm.get_metadata()[CredentialManagement.RESULT.EXISTING_CRED_COUNT]
        expect(after == existing - 1, "count after delete %d" % after)
        left = cm.enumerate_creds(sha256(RP["id"].encode()))
        ids = [c[CredentialManagement.RESULT.CREDENTIAL_ID]["id"] for c in left]
        expect(victim.credential_id not in ids, "deleted credential still enumerated")
        client = Fido2Client(dev, ORIGIN)
        try:
            get(client, [victim], pin=pin, uv="required")
            raise AssertionError("deleted credential still signs")
        except Exception as e:  # noqa: BLE001 - python-fido2 wraps NO_CREDENTIALS in ClientError
            expect("NO_CREDENTIALS" in repr(e) or "DEVICE_INELIGIBLE" in repr(e), "unexpected error %r" % e)
        return {"before": existing, "after": after}

    if state.get("bob"):
        summary["credMgmtV1"] = checks.run("credman-v1-metadata-enumerate", credman_v1)
        summary["credMgmtV2"] = checks.run("credman-v2-delete", credman_v2_delete)
    else:
        checks.skip("credman-v1-metadata-enumerate", "no resident credentials")
        checks.skip("credman-v2-delete", "no resident credentials")

    dev.close()
    return finish(summary, checks)


def check_persisted(dev, ctap2, pin):
    """After a restart: the PIN is set and every resident credential listed by credMgmt still signs."""
    from fido2.ctap2 import AttestedCredentialData

    info = ctap2.get_info()
    expect(info.options.get("clientPin") is True, "PIN not set after restart")
    cp = ClientPin(ctap2)
    cm = CredentialManagement(ctap2, cp.protocol, cp.get_pin_token(pin, ClientPin.PERMISSION.CREDENTIAL_MGMT))
    existing = cm.get_metadata()[CredentialManagement.RESULT.EXISTING_CRED_COUNT]
    listed = cm.enumerate_creds(sha256(RP["id"].encode()))
    creds = [
        AttestedCredentialData.create(
            info.aaguid,
            c[CredentialManagement.RESULT.CREDENTIAL_ID]["id"],
            c[CredentialManagement.RESULT.PUBLIC_KEY],
        )
        for c in listed
    ]
    server = Fido2Server(RP)
    client = Fido2Client(dev, ORIGIN)
    options, auth_state = server.authenticate_begin(None, user_verification="required")
    selection = client.get_assertion(options["publicKey"], pin=pin)
    signed = 0
    for i in range(len(selection.get_assertions())):
        resp = selection.get_response(i)
        server.authenticate_complete(
            auth_state, creds, resp.credential_id, resp.client_data, resp.authenticator_data, resp.signature
        )
        signed += 1
    expect(signed == existing, "%d of %d credentials signed" % (signed, existing))
    users = sorted(c[CredentialManagement.RESULT.USER]["name"] for c in listed)
    return {"clientPin": True, "existing": existing, "users": users}


def finish(summary, checks):
    """Prints the JSON summary as the last line of stdout; returns the exit code."""
    summary["ok"] = all(r["ok"] for r in checks.results)
    summary["passed"] = sum(1 for r in checks.results if r["ok"])
    summary["failed"] = sum(1 for r in checks.results if not r["ok"])
    summary["checks"] = checks.results
    print(json.dumps(summary, default=repr))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
