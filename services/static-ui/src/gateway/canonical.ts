/**
 * The string a device signs in `connect` (the auth service verifies exactly this):
 *
 *     v1|<deviceId>|<clientId>|<role>|<scopes>|<signedAt>|<nonce>
 *
 * - `deviceId`: sha256 hex (lowercase) of the raw 32-byte Ed25519 public key
 * - `clientId`: `connect.client.id` (`aisopod-control-ui`)
 * - `role`:     `connect.role` (`operator`)
 * - `scopes`:   `connect.scopes` joined with "," in the order sent, no spaces
 * - `signedAt`: `connect.device.signedAt`, Unix time in milliseconds, decimal integer
 * - `nonce`:    `connect.challenge.nonce`, verbatim
 *
 * UTF-8 encoded, signed with Ed25519; `device.signature` is the 64-byte signature in
 * base64url without padding, `device.publicKey` the raw public key likewise.
 */

export interface CanonicalFields {
  deviceId: string;
  clientId: string;
  role: string;
  scopes: readonly string[];
  signedAt: number;
  nonce: string;
}

export function canonicalDeviceString(fields: CanonicalFields): string {
  for (const [name, value] of Object.entries(fields)) {
    if (typeof value === "string" && value.includes("|")) {
      throw new Error(`${name} must not contain "|"`);
    }
  }
  if (fields.scopes.some((s) => s.includes(",") || s.includes("|"))) {
    throw new Error('scopes must not contain "," or "|"');
  }
  if (!Number.isSafeInteger(fields.signedAt)) throw new Error("signedAt must be an integer");
  return [
    "v1",
    fields.deviceId,
    fields.clientId,
    fields.role,
    fields.scopes.join(","),
    String(fields.signedAt),
    fields.nonce,
  ].join("|");
}
