// In-memory checkpoints kept across page loads: IndexedDB (browsers only; this file touches no Node built-ins and
// is reached only from the browser entry). One object store, checkpoints by the name the caller chooses.

import { isMemoryCheckpoint, type MemoryCheckpoint } from './memory-checkpoint.js';

const DB = 'kiln';
const STORE = 'checkpoints';

function open(): Promise<IDBDatabase> {
  const idb = (globalThis as { indexedDB?: IDBFactory }).indexedDB;
  if (!idb) return Promise.reject(new Error('IndexedDB is not available here (it exists in browsers and their workers)'));
  return new Promise((resolve, reject) => {
    const req = idb.open(DB, 1);
    req.onupgradeneeded = () => { req.result.createObjectStore(STORE); };
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error ?? new Error('IndexedDB: the database could not be opened'));
  });
}

function run<T>(mode: IDBTransactionMode, fn: (s: IDBObjectStore) => IDBRequest<T>): Promise<T> {
  return open().then((db) => new Promise<T>((resolve, reject) => {
    const tx = db.transaction(STORE, mode);
    const req = fn(tx.objectStore(STORE));
    tx.oncomplete = () => { db.close(); resolve(req.result); };
    tx.onerror = () => { db.close(); reject(tx.error ?? new Error('IndexedDB: the transaction failed')); };
  }));
}

/** Stores a checkpoint (trainer.checkpoint()) in IndexedDB under `name`, replacing one of that name. */
export async function saveCheckpointToIndexedDB(name: string, checkpoint: MemoryCheckpoint): Promise<void> {
  if (!isMemoryCheckpoint(checkpoint)) throw new Error('saveCheckpointToIndexedDB: expected a checkpoint from trainer.checkpoint()');
  await run('readwrite', (s) => s.put(checkpoint, name));
}

/** The checkpoint stored under `name`, or null when there is none. */
export async function loadCheckpointFromIndexedDB(name: string): Promise<MemoryCheckpoint | null> {
  const v = await run('readonly', (s) => s.get(name) as IDBRequest<unknown>);
  if (v === undefined) return null;
  if (!isMemoryCheckpoint(v)) throw new Error(`loadCheckpointFromIndexedDB: the entry '${name}' is not a Kiln checkpoint`);
  return v;
}
