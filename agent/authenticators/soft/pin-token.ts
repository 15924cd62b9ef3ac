/**
 * The pinUvAuthToken and its state (CTAP 2.1 PS 2021-06-15 §6.5.2.1 "pinUvAuthToken state", §6.5.5.7 permissions):
 * permissions, permissions RP ID, the userPresent / userVerified flags, and the usage timer rules:
 *   - initial usage time limit: a token not used within 30 s of being issued stops being usable;
 *   - user-present time limit: the userPresent flag lapses after 30 s;
 *   - maximum usage time period: 10 minutes after issue, the token stops being usable.
 * Time comes from the injected Clock, so every rule is testable without sleeping. One token serves both PIN/UV
 * auth protocols (allowed by §6.5.5.1: the authenticator may share it); resetPinUvAuthToken() replaces it.
 */
import { PERMISSION_LBW } from '../../../protocol/client-pin.ts';
import type { PinUvAuthProtocol } from './pin-protocol.ts';

export const PIN_UV_AUTH_TOKEN_LENGTH = 32;
export const INITIAL_USAGE_TIME_LIMIT_MS = 30_000;
export const USER_PRESENT_TIME_LIMIT_MS = 30_000;
export const MAX_USAGE_TIME_PERIOD_MS = 10 * 60_000;

export class PinUvAuthToken {
  private token: Uint8Array;
  private inUse = false;
  private used = false;
  private permissions = 0;
  private rpId: string | undefined;
  private userPresent = false;
  private userVerified = false;
  private issuedAt = 0;
  /** Issued by the superseded getPinToken (0x05), i.e. to a platform that predates permissions. */
  private legacy = false;

  constructor(private readonly randomBytes: (n: number) => Uint8Array) {
    this.token = randomBytes(PIN_UV_AUTH_TOKEN_LENGTH);
  }

  /** §6.5.5.1 resetPinUvAuthToken(): a fresh random token; the old one stops working. */
  reset(): void {
    this.token.fill(0);
    this.token = this.randomBytes(PIN_UV_AUTH_TOKEN_LENGTH);
    this.stopUsing();
  }

  /**
   * §6.5.5.7 beginUsingPinUvAuthToken(userIsPresent). `legacy`: the token comes from getPinToken (0x05), see
   * {@link grantsLegacyCredentialManagement}.
   */
  beginUsing(userIsPresent: boolean, now: number, permissions: number, rpId: string | undefined, legacy = false): void {
    this.inUse = true;
    this.legacy = legacy;
    this.used = false;
    this.userPresent = userIsPresent;
    this.userVerified = true;
    this.issuedAt = now;
    this.permissions = permissions;
    this.rpId = rpId;
  }

  stopUsing(): void {
    this.inUse = false;
    this.legacy = false;
    this.used = false;
    this.permissions = 0;
    this.rpId = undefined;
    this.userPresent = false;
    this.userVerified = false;
  }

  /** Apply the usage-timer rules (the spec's pinUvAuthTokenUsageTimerObserver) as of `now`. */
  private observe(now: number): void {
    if (!this.inUse) return;
    const age = now - this.issuedAt;
    if (age >= MAX_USAGE_TIME_PERIOD_MS || age < 0 || (!this.used && age >= INITIAL_USAGE_TIME_LIMIT_MS)) {
      this.stopUsing();
      return;
    }
    if (this.userPresent && age >= USER_PRESENT_TIME_LIMIT_MS) this.userPresent = false;
  }

  /** The raw token (encrypted to the platform by the issuing subcommand). */
  value(): Uint8Array {
    return this.token;
  }

  /**
   * verify(pinUvAuthToken, message, pinUvAuthParam) with the given protocol; false when the token is not in use
   * (expired, never issued) or the MAC is wrong. A successful verification marks the token as used.
   */
  verify(protocol: PinUvAuthProtocol, message: Uint8Array, param: Uint8Array, now: number): boolean {
    this.observe(now);
    if (!this.inUse) return false;
    if (!protocol.verify(this.token, message, param)) return false;
    this.used = true;
    return true;
  }

  hasPermission(permission: number): boolean {
    return this.inUse && (this.permissions & permission) === permission;
  }
  /**
   * A getPinToken (0x05) token that still holds its default permissions (mc, ga: §6.5.5.7.1) also authorises the
   * 0x41 "preview" credential management command, as authenticators of the credentialMgmtPreview era did:
   * platforms that only know getPinToken (libfido2 before 1.7 sends 0x41 with such a token) have no way to ask
   * for `cm`. It proves the same PIN a cm token proves; the 0x0A command still requires `cm`.
   */
  grantsLegacyCredentialManagement(): boolean {
    return this.inUse && this.legacy && this.permissions !== 0;
  }
  /** The RP ID the token is bound to, if any. */
  boundRpId(): string | undefined {
    return this.rpId;
  }
  bindRpId(rpId: string): void {
    this.rpId = rpId;
  }
  getUserPresentFlagValue(now: number): boolean {
    this.observe(now);
    return this.inUse && this.userPresent;
  }
  getUserVerifiedFlagValue(now: number): boolean {
    this.observe(now);
    return this.inUse && this.userVerified;
  }
  clearUserPresentFlag(): void {
    this.userPresent = false;
  }
  clearUserVerifiedFlag(): void {
    this.userVerified = false;
  }
  clearPermissionsExceptLbw(): void {
    this.permissions &= PERMISSION_LBW;
    this.legacy = false;
  }
}
