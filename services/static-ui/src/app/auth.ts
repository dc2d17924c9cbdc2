/** Which credential a connect attempt carries. */

import type { AuthCredential } from "../gateway/types";
import type { AuthMode } from "./settings";

/**
 * The secret the operator typed wins; without one the device token the gateway issued
 * after pairing is used; with neither, `auth` is omitted (a gateway in `none` mode, or an
 * edge that verified a bearer token).
 */
export function chooseAuth(mode: AuthMode, secret: string, deviceToken: string): AuthCredential | undefined {
  const typed = secret.trim();
  if (typed) return mode === "password" ? { password: typed } : { token: typed };
  if (deviceToken) return { deviceToken };
  return undefined;
}
