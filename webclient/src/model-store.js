/**
 * The published model on this device: one Cache Storage cache per version, checked by hash.
 *
 * The active version (its manifest, labels and guidance) is recorded in IndexedDB, so the app
 * starts offline after a browser restart. A newer version is downloaded into its own cache in
 * the background, each file checked against the manifest's sha256, and only when every file is
 * there does it become active; then the caches of other versions are deleted. A failed or
 * interrupted download leaves the active version untouched. A manifest this app cannot use
 * (schema, resize recipe) is refused before anything is downloaded.
 */

import { STATE, get, put } from './db.js';
import { checkManifest, upgradeStoredManifest } from './model-contract.js';
import { parseOpenSet } from './openset.js';

const CACHE_PREFIX = 'binbot-model-';
const ACTIVE_KEY = 'active-model';

export const cacheName = (version) => `${CACHE_PREFIX}${version}`;

async function sha256Hex(buffer) {
  const digest = await crypto.subtle.digest('SHA-256', buffer);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}

/** The version this device uses (its manifest in the current form), or undefined. */
export async function activeModel() {
  const entry = await get(STATE, ACTIVE_KEY);
  return entry && { ...entry, manifest: upgradeStoredManifest(entry.manifest) };
}

/**
 * A version's model.json, shards and open-set arrays, each file read by `read(file)` (from its
 * cache, or from memory) and checked by hash.
 */
async function modelFiles(entry, read) {
  const checked = async (file) => {
    const buffer = await read(file);
    if ((await sha256Hex(buffer)) !== file.sha256) throw new Error(`model file ${file.path} is damaged`);
    return buffer;
  };
  const byPath = new Map(entry.files.map((file) => [file.path, file]));
  const modelJson = JSON.parse(new TextDecoder().decode(await checked(byPath.get(entry.manifest.model))));
  const shardFiles = modelJson.weightsManifest.flatMap((group) => group.paths).map((p) => {
    const file = byPath.get(p);
    if (!file) throw new Error(`the manifest does not list shard ${p}`);
    return file;
  });
  const shards = await Promise.all(shardFiles.map(checked));
  const { openset } = entry.manifest;
  const scorer = openset ? parseOpenSet(new TextDecoder().decode(await checked(byPath.get(openset.file)))) : null;
  return { modelJson, shards, openset: scorer };
}

/**
 * The active version's files, read from its cache. Throws when a file is missing or damaged
 * (the caller then downloads the version again).
 */
export async function readModelFiles(entry) {
  const cache = await caches.open(cacheName(entry.version));
  return modelFiles(entry, async (file) => {
    const response = await cache.match(file.url);
    if (!response) throw new Error(`model file ${file.path} is not cached`);
    return response.arrayBuffer();
  });
}

/** A version's files from what `checkForUpdate` just downloaded (`downloaded.bytes`). */
export function downloadedModelFiles(entry, bytes) {
  return modelFiles(entry, async (file) => bytes.get(file.url));
}

async function fetchJson(url) {
  const response = await fetch(url, { cache: 'no-store' });
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  if (!(response.headers.get('Content-Type') ?? '').startsWith('application/json')) {
    // BinBot answers JSON; a web page here is a Wi-Fi sign-in page or a proxy in the way.
    throw new Error('the network answered instead of BinBot (a Wi-Fi sign-in page?)');
  }
  return response.json();
}

/** A response body read chunk by chunk, reporting each chunk's size as it arrives. */
async function readCounting(response, onBytes) {
  if (!response.body) {
    const buffer = await response.arrayBuffer();
    onBytes(buffer.byteLength);
    return buffer;
  }
  const reader = response.body.getReader();
  const chunks = [];
  let length = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    length += value.byteLength;
    onBytes(value.byteLength);
  }
  const whole = new Uint8Array(length);
  let offset = 0;
  for (const chunk of chunks) {
    whole.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return whole.buffer;
}

/**
 * Download every file of `current` (the server's /api/models/current) into its cache.
 * `onProgress({received, total})` counts the bytes that have arrived (or were already cached)
 * against the manifest's total. Resolves to {bytes: Map url -> ArrayBuffer, unsaved}: the
 * files stay in memory, so a device whose storage is full (the cache refuses them: `unsaved`,
 * the reason) can still use the model now, only not offline later.
 */
async function download(current, apiBase, onProgress) {
  const cache = await caches.open(cacheName(current.version));
  const total = current.files.reduce((sum, f) => sum + f.bytes, 0);
  const bytes = new Map();
  let unsaved = null;
  let received = 0;
  const count = (size) => {
    received += size;
    onProgress?.({ received: Math.min(received, total), total });
  };
  try {
    for (const file of current.files) {
      const url = new URL(file.url, apiBase).href;
      const cached = await cache.match(url);
      const kept = cached ? await cached.arrayBuffer() : null;
      if (kept && (await sha256Hex(kept)) === file.sha256) {
        bytes.set(url, kept);
        count(file.bytes);
        continue;
      }
      // no-store: this cache is the copy that counts; a damaged download must not linger
      // in the HTTP cache, where revalidation (same ETag) would hand it back again.
      const response = await fetch(url, { cache: 'no-store' });
      if (!response.ok) throw new Error(`${file.path}: HTTP ${response.status}`);
      const buffer = await readCounting(response, count);
      if ((await sha256Hex(buffer)) !== file.sha256) throw new Error(`${file.path}: hash mismatch`);
      bytes.set(url, buffer);
      if (!unsaved) unsaved = await keep(cache, url, buffer, response.headers.get('Content-Type'));
    }
  } catch (error) {
    await caches.delete(cacheName(current.version));
    throw error;
  }
  if (unsaved) await caches.delete(cacheName(current.version)); // half a version is no use
  return { bytes, unsaved };
}

/** Store one file in the version's cache: null, or why the device would not keep it. */
async function keep(cache, url, buffer, type) {
  try {
    await cache.put(url, new Response(buffer, { headers: { 'Content-Type': type ?? 'application/octet-stream' } }));
    return null;
  } catch (error) {
    if (error?.name !== 'QuotaExceededError') throw error;
    return 'this device is out of storage space';
  }
}

/** Delete the caches of every version but `keep`. */
async function dropOtherVersions(keep) {
  const names = await caches.keys();
  await Promise.all(names.filter((n) => n.startsWith(CACHE_PREFIX) && n !== cacheName(keep)).map((n) => caches.delete(n)));
}

/**
 * Ask the server which version is published; download it when it is new.
 * Resolves to {status: 'current' | 'advice' | 'downloaded', entry} ('advice': same model, newer
 * disposal advice; 'downloaded': in its own cache, not active until `activate(entry)`, once the
 * page has loaded it; with its files' `bytes`, and `unsaved` (why) when the device would not
 * keep them). Rejects when offline.
 */
export async function checkForUpdate(apiBase, { onProgress, force = false } = {}) {
  const active = await activeModel();
  const current = await fetchJson(new URL('api/models/current', apiBase));
  if (!force && active && active.version === current.version) {
    const refreshed = await refreshAdvice(active, apiBase);
    return { status: refreshed ? 'advice' : 'current', entry: refreshed ?? active };
  }
  checkManifest(current.manifest); // throws UnusableModel: keep the active model, say why
  const labels = await fetchJson(new URL('api/labels', apiBase));
  if (labels.model_version !== current.version) {
    throw new Error('the published model changed during the check; try again');
  }
  const { bytes, unsaved } = await download(current, apiBase, onProgress);
  const entry = {
    version: current.version,
    publishedAt: current.published_at,
    manifest: current.manifest,
    labels: labels.labels,
    adviceVersion: labels.advice_version,
    files: current.files.map((f) => ({ ...f, url: new URL(f.url, apiBase).href })),
  };
  return { status: 'downloaded', entry, bytes, unsaved };
}

/**
 * Make a downloaded version the active one and drop the others: only once the app has loaded
 * it, so that a model this app cannot run never replaces one it can.
 */
export async function activate(entry) {
  const active = { ...entry, activatedAt: new Date().toISOString() };
  await put(STATE, active, ACTIVE_KEY);
  await dropOtherVersions(active.version);
  return active;
}

/** Drop a downloaded version that is not to be used (the app could not load it). */
export async function discard(entry) {
  await caches.delete(cacheName(entry.version));
}

/**
 * Newer disposal advice for the active model's kinds, kept with it (so offline shows the last
 * advice seen); null when the server has nothing newer (304) or cannot be asked.
 */
async function refreshAdvice(active, apiBase) {
  const response = await fetch(new URL('api/advice', apiBase), {
    cache: 'no-store',
    headers: active.adviceVersion === undefined ? {} : { 'If-None-Match': `"${active.adviceVersion}"` },
  });
  if (response.status === 304 || !response.ok) return null;
  const { advice_version: version, kinds } = await response.json();
  if (version === active.adviceVersion) return null;
  const labels = active.labels.map((l) => ({ ...l, guidance: kinds[l.name] ?? l.guidance }));
  const entry = { ...active, labels, adviceVersion: version };
  await put(STATE, entry, ACTIVE_KEY);
  return entry;
}

/** The model versions this device holds in Cache Storage (for the status panel and tests). */
export async function cachedVersions() {
  const names = await caches.keys();
  return names.filter((n) => n.startsWith(CACHE_PREFIX)).map((n) => n.slice(CACHE_PREFIX.length));
}
