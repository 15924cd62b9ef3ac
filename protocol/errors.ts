/**
 * The one base of every error keytunnel throws on purpose (as libfido2 keeps one error space): `code` says which
 * failure it is, stable, for the code and tests that act on it; `message` says it to a person; `name` is the
 * class's own name, declared the one way, `override readonly name = 'ClassName'` (a class others extend types it
 * `: string` so they can name themselves). Both are abstract, so the compiler holds every class to it.
 */
export abstract class KeytunnelError extends Error {
  abstract override readonly name: string;
  abstract readonly code: string | number;
}
