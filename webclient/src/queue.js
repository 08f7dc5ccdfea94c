/**
 * Corrections waiting to be sent: stored in IndexedDB first, sent when the server answers.
 *
 * Every correction gets its id once, when it is queued; that id is the Idempotency-Key, so a
 * send that reached the server but whose answer was lost is stored once however often it is
 * retried. A 4xx answer means retrying cannot help: the item is marked rejected with the
 * server's message and kept for the user to see and dismiss. Network errors leave it waiting;
 * "not now" answers (429, 503, 507 and other 5xx) leave it waiting too and pause the whole queue
 * for as long as the server's Retry-After says (or a doubling backoff), so that a busy server
 * is neither hammered nor loses a correction. Only BinBot's own answer (JSON, like all its
 * answers, errors included) settles an item: a Wi-Fi login page or a proxy that answers in the
 * server's place, with a redirect, a 200 page or a 4xx of its own, leaves it waiting. After such
 * an answer the queue is "blocked": later tries first ask BinBot's smallest answer (`api/ping`)
 * and upload only once BinBot itself answers, so a photo is not sent into a login page again at
 * every try. Used by the page and by the service worker (Background Sync), which take turns
 * through a Web Lock.
 */

import { CORRECTIONS, STATE, get, getAll, put, remove } from './db.js';

export const SYNC_TAG = 'binbot-corrections';
// Answers that mean "not now": too many requests, busy, out of space. Never a rejection.
const LATER = new Set([408, 425, 429, 503, 507]);
const PAUSE_KEY = 'queue-paused-until';
const BLOCKED_KEY = 'queue-blocked';
const BACKOFF_START_MS = 30_000;
const BACKOFF_MAX_MS = 3_600_000;
const CHANNEL = 'binbot-queue';
// Held while corrections are sent (by the page or the service worker), and to take one back.
const SEND_LOCK = 'binbot-flush';

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

export async function enqueue({ photo, label, proposedName, predictedLabel, confidence, modelVersion }) {
  const item = {
    id: crypto.randomUUID(),
    createdAt: new Date().toISOString(),
    status: 'waiting',
    photo,
    label: label ?? null,
    proposedName: proposedName ?? null,
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

/**
 * A waiting correction taken back before it is sent: the wrong kind tapped, or a photo its
 * owner would rather not share after all. It is taken under the senders' lock, so it is either
 * sent already or never sent: 'withdrawn', 'gone' (sent or settled meanwhile, perhaps by
 * another tab) or 'busy' (an upload still held the lock after `waitMs`, on a slow network).
 */
export async function withdraw(id, waitMs = 5000) {
  const take = async () => {
    const item = await get(CORRECTIONS, id);
    if (item?.status !== 'waiting') return 'gone';
    await remove(CORRECTIONS, id);
    announce();
    return 'withdrawn';
  };
  if (typeof navigator === 'undefined' || !navigator.locks) return take();
  if (typeof AbortSignal.timeout !== 'function') { // Safari 15.4-15.6: locks, no timeout signal
    return navigator.locks.request(SEND_LOCK, { ifAvailable: true }, (lock) => (lock ? take() : 'busy'));
  }
  try {
    return await navigator.locks.request(SEND_LOCK, { signal: AbortSignal.timeout(waitMs) }, take);
  } catch (error) {
    if (error?.name === 'TimeoutError' || error?.name === 'AbortError') return 'busy';
    throw error;
  }
}

/**
 * A correction refused for its name, sent again under the name put right: a new correction
 * (a new Idempotency-Key, as the server stored nothing for the refused one) with the same
 * photo, in place of the refused one.
 */
export async function renameAndRequeue(id, proposedName) {
  const refused = await get(CORRECTIONS, id);
  if (!refused) return null; // dismissed or renamed meanwhile (another tab)
  const { photo, label, predictedLabel, confidence, modelVersion } = refused;
  const item = await enqueue({ photo, label, proposedName, predictedLabel, confidence, modelVersion });
  await dismiss(id);
  return item;
}

function formFor(item) {
  const form = new FormData();
  form.append('image', item.photo, 'photo.jpg');
  if (item.label) form.append('label', item.label);
  if (item.proposedName) form.append('proposed_name', item.proposedName);
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
      redirect: 'manual', // BinBot never redirects this request; a login page on the way does
    });
  } catch {
    return 'offline';
  }
  const answer = await serverAnswer(response);
  if (response.ok) {
    if (!answer?.submission && answer?.received !== true) return 'blocked';
    await remove(CORRECTIONS, item.id);
    return 'sent';
  }
  if (LATER.has(response.status) || response.status >= 500) {
    // The server is busy or asks to wait: keep the item, and pause the whole queue.
    const attempts = item.attempts + 1;
    await put(CORRECTIONS, { ...item, attempts });
    await put(STATE, Date.now() + retryDelay(response, attempts), PAUSE_KEY);
    return 'later';
  }
  if (response.status >= 400 && response.status < 500 && typeof answer?.error === 'string') {
    // `field`: the part of the correction at fault that the person can put right (the name).
    const field = typeof answer.field === 'string' ? answer.field : null;
    await put(CORRECTIONS, { ...item, status: 'rejected', error: answer.error, field, attempts: item.attempts + 1 });
    return 'rejected';
  }
  return 'blocked'; // a redirect, or an answer that is not BinBot's: try again later
}

/** Whether BinBot itself answers at `apiBase` (not a login page or a proxy in its place). */
async function binbotAnswers(apiBase) {
  try {
    const response = await fetch(new URL('api/ping', apiBase), { cache: 'no-store', redirect: 'manual' });
    return response.ok && (await serverAnswer(response))?.service === 'binbot';
  } catch {
    return false;
  }
}

/** The JSON body of BinBot's answer, or null when the answer is not BinBot's. */
async function serverAnswer(response) {
  if (response.type === 'opaqueredirect') return null;
  if (!(response.headers.get('Content-Type') ?? '').startsWith('application/json')) return null;
  try {
    const body = await response.json();
    return body !== null && typeof body === 'object' ? body : null;
  } catch {
    return null;
  }
}

/**
 * How long to wait after a "later" answer: the server's Retry-After (seconds or a date), or a
 * backoff that doubles from 30 s up to an hour with each attempt of the same item.
 */
function retryDelay(response, attempts) {
  const header = response.headers.get('Retry-After') ?? '';
  const seconds = Number(header);
  if (header && Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const date = Date.parse(header);
  if (!Number.isNaN(date)) return Math.max(0, date - Date.now());
  return Math.min(BACKOFF_START_MS * 2 ** (attempts - 1), BACKOFF_MAX_MS);
}

/** When the queue may send again (ms since the epoch), or 0 when it may now. */
export async function pausedUntil() {
  const until = (await get(STATE, PAUSE_KEY)) ?? 0;
  return until > Date.now() ? until : 0;
}

/** Whether the last upload was answered by something other than BinBot. */
export async function blockedInTheWay() {
  return (await get(STATE, BLOCKED_KEY)) === true;
}

async function flushUnlocked(apiBase) {
  const summary = { sent: 0, rejected: 0, waiting: 0, pausedUntil: await pausedUntil() };
  const items = (await listCorrections()).filter((item) => item.status === 'waiting');
  const mayUpload = items.length > 0 && !summary.pausedUntil
    && (!(await blockedInTheWay()) || (await binbotAnswers(apiBase)));
  for (const item of mayUpload ? items : []) {
    const outcome = await sendOne(item, apiBase);
    await put(STATE, outcome === 'blocked', BLOCKED_KEY);
    if (outcome === 'sent') summary.sent += 1;
    else if (outcome === 'rejected') summary.rejected += 1;
    else break; // unreachable, in the way, or asked to wait: the rest would fare the same way
  }
  summary.waiting = (await listCorrections()).filter((i) => i.status === 'waiting').length;
  summary.pausedUntil = await pausedUntil();
  if (summary.sent || summary.rejected) announce();
  return summary;
}

/** Send every waiting correction, in order; one sender at a time across page and worker. */
export async function flush(apiBase) {
  if (typeof navigator !== 'undefined' && navigator.locks) {
    return navigator.locks.request(SEND_LOCK, () => flushUnlocked(apiBase));
  }
  return flushUnlocked(apiBase);
}
