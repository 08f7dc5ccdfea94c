/**
 * Corrections waiting to be sent: stored in IndexedDB first, sent when the server answers.
 *
 * Every correction gets its id once, when it is queued; that id is the Idempotency-Key, so a
 * send that reached the server but whose answer was lost is stored once however often it is
 * retried. A 4xx answer means retrying cannot help: the item is marked rejected with the
 * server's message and kept for the user to see and dismiss. Network errors and 5xx leave it
 * waiting. Used by the page and by the service worker (Background Sync), which take turns
 * through a Web Lock.
 */

import { CORRECTIONS, getAll, put, remove } from './db.js';

export const SYNC_TAG = 'binbot-corrections';
const CHANNEL = 'binbot-queue';

function announce() {
  if (typeof BroadcastChannel === 'undefined') return;
  const channel = new BroadcastChannel(CHANNEL);
  channel.postMessage('changed');
  channel.close();
}

/** Call `listener` whenever any page or the service worker changes the queue. */
export function onQueueChange(listener) {
  if (typeof BroadcastChannel === 'undefined') return;
  new BroadcastChannel(CHANNEL).onmessage = listener;
}

export async function enqueue({ photo, label, predictedLabel, confidence, modelVersion }) {
  const item = {
    id: crypto.randomUUID(),
    createdAt: new Date().toISOString(),
    status: 'waiting',
    photo,
    label,
    predictedLabel: predictedLabel ?? null,
    confidence: confidence ?? null,
    modelVersion: modelVersion ?? null,
    attempts: 0,
    error: null,
  };
  await put(CORRECTIONS, item);
  announce();
  return item;
}

export async function listCorrections() {
  const items = await getAll(CORRECTIONS);
  return items.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
}

export async function dismiss(id) {
  await remove(CORRECTIONS, id);
  announce();
}

function formFor(item) {
  const form = new FormData();
  form.append('image', item.photo, 'photo.jpg');
  form.append('label', item.label);
  if (item.predictedLabel) form.append('predicted_label', item.predictedLabel);
  if (item.confidence !== null) form.append('confidence', String(item.confidence));
  if (item.modelVersion) form.append('model_version', item.modelVersion);
  return form;
}

async function sendOne(item, apiBase) {
  let response;
  try {
    response = await fetch(new URL('api/submissions', apiBase), {
      method: 'POST',
      body: formFor(item),
      headers: { 'Idempotency-Key': item.id },
      cache: 'no-store',
    });
  } catch {
    return 'offline';
  }
  if (response.ok) {
    await remove(CORRECTIONS, item.id);
    return 'sent';
  }
  if (response.status >= 400 && response.status < 500 && ![408, 425, 429].includes(response.status)) {
    let message = `HTTP ${response.status}`;
    try { message = (await response.json()).error ?? message; } catch { /* not JSON */ }
    await put(CORRECTIONS, { ...item, status: 'rejected', error: message, attempts: item.attempts + 1 });
    return 'rejected';
  }
  await put(CORRECTIONS, { ...item, attempts: item.attempts + 1 });
  return 'offline';
}

async function flushUnlocked(apiBase) {
  const summary = { sent: 0, rejected: 0, waiting: 0 };
  for (const item of await listCorrections()) {
    if (item.status !== 'waiting') continue;
    const outcome = await sendOne(item, apiBase);
    if (outcome === 'sent') summary.sent += 1;
    else if (outcome === 'rejected') summary.rejected += 1;
    else break; // the server is unreachable: the rest would fail the same way
  }
  summary.waiting = (await listCorrections()).filter((i) => i.status === 'waiting').length;
  if (summary.sent || summary.rejected) announce();
  return summary;
}

/** Send every waiting correction, in order; one sender at a time across page and worker. */
export async function flush(apiBase) {
  if (typeof navigator !== 'undefined' && navigator.locks) {
    return navigator.locks.request('binbot-flush', () => flushUnlocked(apiBase));
  }
  return flushUnlocked(apiBase);
}
