/**
 * Device identity: an Ed25519 key pair made with WebCrypto, non-extractable, kept in
 * IndexedDB so the same browser profile is the same device across reloads. Browsers
 * without Ed25519 (or without a secure context) connect without a device.
 */

import { canonicalDeviceString } from "./canonical";
import { base64url, hex } from "./encoding";

export interface DeviceIdentity {
  /** sha256 hex of the raw public key. */
  id: string;
  /** Raw 32-byte public key, base64url. */
  publicKey: string;
}

export interface DeviceSigner {
  readonly identity: DeviceIdentity;
  /** Ed25519 signature of the UTF-8 text, base64url. */
  sign(text: string): Promise<string>;
}

/** `connect.device` as docs/protocol/websocket.md names it. */
export interface DeviceProof {
  id: string;
  publicKey: string;
  signature: string;
  signedAt: number;
  nonce: string;
}

export interface ProofRequest {
  clientId: string;
  role: string;
  scopes: readonly string[];
  nonce: string;
  signedAt: number;
}

export async function proveDevice(signer: DeviceSigner, req: ProofRequest): Promise<DeviceProof> {
  const text = canonicalDeviceString({
    deviceId: signer.identity.id,
    clientId: req.clientId,
    role: req.role,
    scopes: req.scopes,
    signedAt: req.signedAt,
    nonce: req.nonce,
  });
  return {
    id: signer.identity.id,
    publicKey: signer.identity.publicKey,
    signature: await signer.sign(text),
    signedAt: req.signedAt,
    nonce: req.nonce,
  };
}

/** A signer around a WebCrypto Ed25519 key pair (the private key may be non-extractable). */
export async function signerFromKeyPair(subtle: SubtleCrypto, pair: CryptoKeyPair): Promise<DeviceSigner> {
  const raw = new Uint8Array(await subtle.exportKey("raw", pair.publicKey));
  const digest = new Uint8Array(await subtle.digest("SHA-256", raw));
  const identity = { id: hex(digest), publicKey: base64url(raw) };
  const encoder = new TextEncoder();
  return {
    identity,
    async sign(text: string): Promise<string> {
      const sig = await subtle.sign({ name: "Ed25519" }, pair.privateKey, encoder.encode(text));
      return base64url(new Uint8Array(sig));
    },
  };
}

const DB_NAME = "aisopod-control-ui";
const STORE = "keys";
const KEY = "device-ed25519";

function openDb(): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB_NAME, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE);
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error ?? new Error("indexedDB open failed"));
  });
}

function storedPair(db: IDBDatabase): Promise<CryptoKeyPair | undefined> {
  return new Promise((resolve, reject) => {
    const req = db.transaction(STORE, "readonly").objectStore(STORE).get(KEY);
    req.onsuccess = () => resolve(req.result as CryptoKeyPair | undefined);
    req.onerror = () => reject(req.error ?? new Error("indexedDB read failed"));
  });
}

/** Store `pair` unless another tab stored one first; returns the pair that won. */
function storeOnce(db: IDBDatabase, pair: CryptoKeyPair): Promise<CryptoKeyPair> {
  return new Promise((resolve, reject) => {
    const store = db.transaction(STORE, "readwrite").objectStore(STORE);
    const get = store.get(KEY);
    get.onsuccess = () => {
      const existing = get.result as CryptoKeyPair | undefined;
      if (existing) return resolve(existing);
      const put = store.put(pair, KEY);
      put.onsuccess = () => resolve(pair);
      put.onerror = () => reject(put.error ?? new Error("indexedDB write failed"));
    };
    get.onerror = () => reject(get.error ?? new Error("indexedDB read failed"));
  });
}

let cached: Promise<DeviceSigner | null> | undefined;

/** The browser's device signer, made on first use; null when Ed25519 or IndexedDB is missing. */
export function browserDevice(): Promise<DeviceSigner | null> {
  cached ??= loadBrowserDevice().catch(() => null);
  return cached;
}

async function loadBrowserDevice(): Promise<DeviceSigner | null> {
  const subtle = globalThis.crypto?.subtle;
  if (!subtle || typeof indexedDB === "undefined") return null;
  const db = await openDb();
  try {
    let pair = await storedPair(db);
    if (!pair) {
      const made = (await subtle.generateKey({ name: "Ed25519" }, false, [
        "sign",
        "verify",
      ])) as CryptoKeyPair;
      pair = await storeOnce(db, made);
    }
    return await signerFromKeyPair(subtle, pair);
  } finally {
    db.close();
  }
}
