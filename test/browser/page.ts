/**
 * The sample relying party's page: what a website's sign-up / sign-in page does with WebAuthn, and nothing else.
 * It fetches the server's options (PublicKeyCredential*OptionsJSON), calls navigator.credentials.create() then
 * .get(), and POSTs each response to the server, which verifies it; every failure is POSTed too (name + message),
 * so the server's log is the whole story and the test never scrapes the browser.
 *
 * A failed ceremony can leave the promise pending in headless Chromium (measured, docs/platform-notes.md), so
 * each ceremony carries an AbortSignal that fires after `ceremonyTimeoutMs` — the page then reports AbortError
 * instead of hanging. The base64url helpers are the WebAuthn L3 §5.1 `toJSON()` encoding, done by hand because
 * Chromium's PublicKeyCredential.parse*OptionsFromJSON is not something to rely on across versions.
 */

/** The HTML page; the script reads its settings from the query string (?timeout=MS). */
export function renderPage(): string {
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>keytunnel sample RP</title></head>
<body><h1>keytunnel sample relying party</h1><pre id="log"></pre>
<script>
'use strict';
const params = new URLSearchParams(location.search);
const ceremonyTimeoutMs = Number(params.get('timeout') || '30000');
const logEl = document.getElementById('log');
const log = (m) => { logEl.textContent += m + '\\n'; };

const b64uToBuf = (s) => {
  const b64 = s.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (s.length % 4)) % 4);
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)).buffer;
};
const bufToB64u = (buf) => {
  const bytes = new Uint8Array(buf);
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\\+/g, '-').replace(/\\//g, '_').replace(/=+$/, '');
};

async function post(path, body) {
  const r = await fetch(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return r.json();
}

function withWatchdog() {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), ceremonyTimeoutMs);
  return { signal: controller.signal, done: () => clearTimeout(timer) };
}

async function register() {
  const o = await (await fetch('/registration/options')).json();
  const publicKey = {
    ...o,
    challenge: b64uToBuf(o.challenge),
    user: { ...o.user, id: b64uToBuf(o.user.id) },
    excludeCredentials: (o.excludeCredentials || []).map((c) => ({ ...c, id: b64uToBuf(c.id) })),
  };
  const w = withWatchdog();
  let cred;
  try {
    cred = await navigator.credentials.create({ publicKey, signal: w.signal });
  } finally {
    w.done();
  }
  return post('/registration/verify', {
    id: cred.id,
    rawId: bufToB64u(cred.rawId),
    type: cred.type,
    response: {
      clientDataJSON: bufToB64u(cred.response.clientDataJSON),
      attestationObject: bufToB64u(cred.response.attestationObject),
      transports: cred.response.getTransports ? cred.response.getTransports() : [],
    },
    clientExtensionResults: cred.getClientExtensionResults(),
    authenticatorAttachment: cred.authenticatorAttachment || undefined,
  });
}

async function login() {
  const o = await (await fetch('/authentication/options')).json();
  const publicKey = {
    ...o,
    challenge: b64uToBuf(o.challenge),
    allowCredentials: (o.allowCredentials || []).map((c) => ({ ...c, id: b64uToBuf(c.id) })),
  };
  const w = withWatchdog();
  let cred;
  try {
    cred = await navigator.credentials.get({ publicKey, signal: w.signal });
  } finally {
    w.done();
  }
  return post('/authentication/verify', {
    id: cred.id,
    rawId: bufToB64u(cred.rawId),
    type: cred.type,
    response: {
      clientDataJSON: bufToB64u(cred.response.clientDataJSON),
      authenticatorData: bufToB64u(cred.response.authenticatorData),
      signature: bufToB64u(cred.response.signature),
      userHandle: cred.response.userHandle ? bufToB64u(cred.response.userHandle) : undefined,
    },
    clientExtensionResults: cred.getClientExtensionResults(),
    authenticatorAttachment: cred.authenticatorAttachment || undefined,
  });
}

(async () => {
  let phase = 'registration';
  try {
    const reg = await register();
    log('registration: ' + JSON.stringify(reg));
    if (!reg.verified) throw new Error('the server did not verify the registration');
    phase = 'authentication';
    const auth = await login();
    log('authentication: ' + JSON.stringify(auth));
    await post('/done', { ok: auth.verified === true });
  } catch (e) {
    log(phase + ' failed: ' + e.name + ': ' + e.message);
    await post('/client-error', { phase, name: String(e && e.name), message: String(e && e.message) });
  }
})();
</script></body></html>
`;
}
