/**
 * The app's IndexedDB: queued corrections and small pieces of state (the active model).
 *
 * IndexedDB rather than localStorage because it survives tab closes and browser restarts,
 * holds Blobs (the photos), and is reachable from the service worker, which sends the queue
 * on Background Sync.
 */

const DB_NAME = 'binbot';
const DB_VERSION = 1;
export const CORRECTIONS = 'corrections';
export const STATE = 'state';

let opening = null;

export function openDb() {
  if (!opening) {
    opening = new Promise((resolve, reject) => {
      const request = indexedDB.open(DB_NAME, DB_VERSION);
      request.onupgradeneeded = () => {
        const db = request.result;
        if (!db.objectStoreNames.contains(CORRECTIONS)) db.createObjectStore(CORRECTIONS, { keyPath: 'id' });
        if (!db.objectStoreNames.contains(STATE)) db.createObjectStore(STATE);
      };
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => { opening = null; reject(request.error); };
    });
  }
  return opening;
}

/** Run one request against a store and resolve when its transaction has committed. */
async function run(storeName, mode, makeRequest) {
  const db = await openDb();
  return new Promise((resolve, reject) => {
    const transaction = db.transaction(storeName, mode);
    const request = makeRequest(transaction.objectStore(storeName));
    transaction.oncomplete = () => resolve(request.result);
    transaction.onerror = () => reject(transaction.error);
    transaction.onabort = () => reject(transaction.error ?? new Error('IndexedDB transaction aborted'));
  });
}

export const getAll = (store) => run(store, 'readonly', (s) => s.getAll());
export const get = (store, key) => run(store, 'readonly', (s) => s.get(key));
export const put = (store, value, key) => run(store, 'readwrite', (s) => (key === undefined ? s.put(value) : s.put(value, key)));
export const remove = (store, key) => run(store, 'readwrite', (s) => s.delete(key));
