import type { Circuit } from './circuit.js';
import type { KeyStore } from './types.js';

/** A digest no key has (digests are SHA-256 or HMAC-SHA256 hex): what the probe looks up. */
export const PROBE_DIGEST = '0'.repeat(64);

/**
 * `store` behind `circuit`: once a call times out or loses its connection, every call fails at
 * once (`BackendUnavailableError`) until the circuit's probe gets an answer, so no request waits on
 * a store known to be down. Its `auditSink` is the store's own (the same object).
 */
export function guardStore(store: KeyStore, circuit: Circuit): KeyStore {
  const guarded: KeyStore = {
    get auditSink() {
      return store.auditSink;
    },
    findByDigest: (digest) => circuit.call(() => store.findByDigest(digest)),
    create: (key, event) => circuit.call(() => store.create(key, event)),
    get: (id) => circuit.call(() => store.get(id)),
    list: (query) => circuit.call(() => store.list(query)),
    update: (id, patch, event) => circuit.call(() => store.update(id, patch, event)),
    rotate: (id, rotation, event) => circuit.call(() => store.rotate(id, rotation, event)),
    revoke: (id, at, event) => circuit.call(() => store.revoke(id, at, event)),
  };
  const { digestVersions } = store;
  if (digestVersions) guarded.digestVersions = () => circuit.call(() => digestVersions.call(store));
  return guarded;
}
