import { describe, expect, it } from "vitest";
import { canonicalDeviceString } from "./canonical";
import { proveDevice, signerFromKeyPair } from "./device";
import { fromBase64url, hex } from "./encoding";

const subtle = globalThis.crypto.subtle;

describe("device identity", () => {
  it("signs the canonical string with a non-extractable Ed25519 key", async () => {
    const pair = (await subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"])) as CryptoKeyPair;
    const signer = await signerFromKeyPair(subtle, pair);

    const raw = fromBase64url(signer.identity.publicKey);
    expect(raw.length).toBe(32);
    expect(signer.identity.publicKey).not.toMatch(/[+/=]/);
    const digest = new Uint8Array(await subtle.digest("SHA-256", raw));
    expect(signer.identity.id).toBe(hex(digest));
    expect(signer.identity.id).toMatch(/^[0-9a-f]{64}$/);

    const proof = await proveDevice(signer, {
      clientId: "aisopod-control-ui",
      role: "operator",
      scopes: ["operator.read", "operator.admin"],
      nonce: "abc",
      signedAt: 1700000000000,
    });
    expect(proof).toMatchObject({ id: signer.identity.id, publicKey: signer.identity.publicKey, nonce: "abc", signedAt: 1700000000000 });

    const signature = fromBase64url(proof.signature);
    expect(signature.length).toBe(64);
    const text = canonicalDeviceString({
      deviceId: signer.identity.id,
      clientId: "aisopod-control-ui",
      role: "operator",
      scopes: ["operator.read", "operator.admin"],
      signedAt: 1700000000000,
      nonce: "abc",
    });
    const imported = await subtle.importKey("raw", raw, { name: "Ed25519" }, true, ["verify"]);
    const enc = new TextEncoder();
    expect(await subtle.verify({ name: "Ed25519" }, imported, signature, enc.encode(text))).toBe(true);
    expect(await subtle.verify({ name: "Ed25519" }, imported, signature, enc.encode(text + "x"))).toBe(false);
  });
});
