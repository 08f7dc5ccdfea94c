/**
 * BinBot's web app: wires the camera, the model, the corrections queue and the screen.
 *
 * Start-up order matters for offline use: the active model comes from this device's cache
 * first (no network needed), and only then does the app ask the server whether a newer
 * version is published and whether queued corrections can be sent.
 */

import { captureFrame, liveCamera, liveCameraAvailable, watchFileInputs } from './camera.js';
import { createClassifier } from './classifier.js';
import { UnusableModel, checkManifest } from './model-contract.js';
import { prepareBundle } from './graph-model.js';
import { verdict } from './openset.js';
import {
  activate, activeModel, cachedVersions, checkForUpdate, discard, downloadedModelFiles, readModelFiles,
} from './model-store.js';
import {
  SYNC_TAG, blockedInTheWay, dismiss, enqueue, flush, listCorrections, onQueueChange, pausedUntil,
  renameAndRequeue, withdraw,
} from './queue.js';
import * as ui from './ui.js';

const APP_BASE = new URL('./', location.href);
const NOT_SURE_BELOW = 0.6; // below this top-1 probability the app asks the user to choose
const UPLOAD_MAX_SIDE = 1024;
const UPDATE_EVERY_MS = 15 * 60 * 1000;
const RETRY_QUEUE_EVERY_MS = 30 * 1000;

const state = {
  entry: null,
  info: null,
  classifier: null,
  runtime: null, // settles once the classifier (worker, TF.js, wasm) has started
  last: null, // { blob, result }
  openset: null, // the active model's open-set score (openset.js), when its bundle has one
  checking: null,
  photoWaiting: false, // a photo was chosen before the first model was ready
  photos: 0, // photos chosen so far: only the latest one's answer is shown
  classifying: 0, // photos being classified now
  unsaved: null, // {version, reason}: the version in use that this device could not keep
};
let markModelReady;
const modelReady = new Promise((resolve) => { markModelReady = resolve; });

/** A performance mark for the start-up's milestones, once: benchmarks and DevTools read them. */
function markOnce(name) {
  if (!performance.getEntriesByName(name).length) performance.mark(name);
}

/** Load a version into the classifier: from its cache, or from the bytes just downloaded. */
async function loadIntoClassifier(entry, downloaded = null) {
  checkManifest(entry.manifest);
  const { modelJson, shards, openset } = downloaded
    ? await downloadedModelFiles(entry, downloaded)
    : await readModelFiles(entry);
  markOnce('binbot:model-files-read');
  // Decoded and folded here, on the page, while the inference worker starts the runtime.
  const prepared = await prepareBundle(modelJson, shards);
  await state.runtime;
  // With a photo already waiting, its own run sets the kernels up: a warm-up first would only
  // make the user wait for two runs instead of one.
  const warmUp = !state.photoWaiting;
  try {
    await state.classifier.load({ version: entry.version, manifest: entry.manifest, prepared, warmUp });
  } catch (error) {
    const reason = error.message.split('. ')[0]; // TF.js goes on with advice for developers
    throw new UnusableModel(`Model ${entry.version} needs something this version of BinBot cannot run (${reason}). Reload the page to update BinBot.`);
  }
  state.entry = entry;
  state.openset = openset;
  ui.fillLabelPicker(entry.labels);
  showModelLine();
  markOnce('binbot:model-ready');
  markModelReady();
}

function showModelLine() {
  const unkept = state.unsaved?.version === state.entry?.version ? state.unsaved.reason : null;
  ui.showModel(state.entry, state.info, navigator.onLine, unkept);
}

const megabytes = (bytes) => (bytes / 1e6).toFixed(1);

/**
 * Ask the server for a newer model; switch to it once it is downloaded, checked and loaded.
 * `force` downloads the published version even when it is the active one (a damaged cache).
 */
function checkForNewModel({ quiet = true, force = false } = {}) {
  if (quiet && state.unsaved) return Promise.resolve('unsaved');
  state.checking ??= (async () => {
    try {
      const outcome = await checkForUpdate(APP_BASE, {
        force,
        onProgress: ({ received, total }) => {
          if (quiet && state.entry) return;
          const share = Math.floor((100 * received) / total);
          ui.setStatus(`Downloading the model: ${share}% (${megabytes(received)} of ${megabytes(total)} MB)`, { busy: true });
        },
      });
      if (outcome.status === 'downloaded') {
        try {
          await loadIntoClassifier(outcome.entry, outcome.bytes);
        } catch (error) {
          if (outcome.entry.version !== state.entry?.version) await discard(outcome.entry);
          throw error;
        }
        if (outcome.unsaved) {
          // In use now; not kept, so not recorded as this device's model either, and not
          // downloaded again by the background checks (a reload tries again).
          state.unsaved = { version: outcome.entry.version, reason: outcome.unsaved };
          showModelLine();
          ui.setStatus(`Model ${outcome.entry.version} is ready, but ${outcome.unsaved}: BinBot cannot keep it for use offline. Free some space and reload to keep it.`);
        } else {
          state.entry = await activate(outcome.entry);
          ui.setStatus(`Model ${outcome.entry.version} is ready.`);
        }
      } else if (outcome.status === 'advice') {
        state.entry = outcome.entry;
        ui.fillLabelPicker(outcome.entry.labels);
        const shown = state.last?.result;
        if (shown?.verdict === 'known') ui.showGuidanceFor(outcome.entry.labels, shown.ranked[0].label);
        ui.setStatus('The disposal advice was updated.');
      } else if (!quiet) {
        ui.setStatus(`Model ${outcome.entry.version} is the latest.`);
      }
      return outcome.status;
    } catch (error) {
      if (error instanceof UnusableModel) ui.setStatus(error.message);
      else if (!state.entry) ui.setStatus('BinBot needs a connection once, to download its model. Please connect and reload.');
      else if (!quiet) {
        const why = !navigator.onLine || isNetworkFailure(error)
          ? `BinBot cannot be reached from here. Model ${state.entry.version} keeps working offline.`
          : error.message;
        ui.setStatus(`Could not check for a new model: ${why}`);
      }
      return 'failed';
    } finally {
      state.checking = null;
    }
  })();
  return state.checking;
}

async function refreshQueue() {
  ui.showQueue(await listCorrections(), await pausedUntil(), await blockedInTheWay(), {
    onDismiss: async (id) => { await dismiss(id); refreshQueue(); },
    onRename: async (id, name) => {
      if (await renameAndRequeue(id, name)) requestBackgroundSync();
      await sendQueue();
    },
    onWithdraw: async (id) => {
      const outcome = await withdraw(id);
      ui.showQueueNotice(WITHDRAWN[outcome]);
      const onScreen = state.last?.saved;
      if (outcome === 'withdrawn' && onScreen?.id === id) { // its photo is still on screen
        state.last.saved = null;
        ui.showResult(state.last.result, state.entry.labels); // not the taken-back kind's advice
        ui.askAgain(onScreen.label ?? ui.OTHER, onScreen.proposedName,
          'Taken back. Choose what it is and send it again, or leave it.');
      }
      refreshQueue();
    },
    editing: state.last?.refused ?? null,
  });
}

// What the person is told after "Don't send", by withdraw()'s outcome.
const WITHDRAWN = {
  withdrawn: 'Taken back: that photo will not be sent.',
  gone: 'That correction had been sent already.',
  busy: 'That correction is being sent right now; try again in a moment.',
};

/** fetch's own error for no connection ("Failed to fetch", "NetworkError ...", "Load failed"). */
function isNetworkFailure(error) {
  return error instanceof TypeError && /fetch|network|load failed/i.test(error.message);
}

async function sendQueue() {
  try {
    await flush(APP_BASE);
  } finally {
    await refreshQueue();
  }
}

async function requestBackgroundSync() {
  try {
    const registration = await navigator.serviceWorker?.ready;
    await registration?.sync?.register(SYNC_TAG);
  } catch { /* no Background Sync: start-up, 'online' and the retry timer send instead */ }
}

/**
 * Classify a photo the user chose and show the verdict. A photo chosen while an earlier one is
 * still being read supersedes it: the earlier answer may come last (a 50 MP photo takes longer
 * than a small one), and it must never sit beside the newer photo, where a correction would
 * label the wrong picture. So the last result goes away at once, and only the latest answers.
 */
async function classifyPhoto(blob) {
  const photo = ++state.photos;
  const refusedOnScreen = state.last?.refused;
  state.last = null;
  if (refusedOnScreen) refreshQueue(); // its name can now be put right in the list
  ui.hideResult();
  ui.showPreview(blob);
  ui.showQueueNotice(''); // about a correction taken back: old news once a new photo is in
  state.classifying += 1;
  try {
    if (!state.entry) {
      state.photoWaiting = true;
      ui.setStatus('Getting the model ready…', { busy: true });
    }
    await modelReady;
    state.photoWaiting = false;
    if (photo !== state.photos) return;
    ui.setStatus('Looking at your photo…', { busy: true });
    const result = await state.classifier.classify(blob);
    if (photo !== state.photos) return;
    result.verdict = verdict(state.openset, result.embedding, result.probabilities, NOT_SURE_BELOW);
    state.last = { blob, result };
    ui.showResult(result, state.entry.labels);
    ui.setStatus('');
    markOnce('binbot:first-prediction');
    window.binbot.lastResult = result;
  } catch (error) {
    if (photo === state.photos) ui.setStatus(`Sorry, that did not work: ${error.message}`);
  } finally {
    state.classifying -= 1;
  }
}

/** Queue what the user says it is: one of the kinds (`label`), or a name of their own. */
async function saveCorrection(label, proposedName = null) {
  const saving = state.last;
  if (!saving) return; // no verdict on screen (a newer photo is being read)
  const { blob, result } = saving;
  const [best] = result.ranked;
  const name = `"${label ?? proposedName}"`;
  let item;
  ui.elements.sendButton.disabled = true;
  try {
    // A name the server refused for this photo, now put right: the refusal is settled.
    if (saving.refused) await dismiss(saving.refused);
    saving.refused = null;
    const photo = await state.classifier.downscale(blob, UPLOAD_MAX_SIDE);
    item = await enqueue({ photo, label, proposedName, predictedLabel: best.label,
      confidence: best.probability, modelVersion: result.version });
    saving.saved = item; // to take back while its photo is still on screen
    await refreshQueue(); // the count and the thank-you appear together
    if (state.last === saving) { // still the photo on screen
      ui.feedbackDone(`Thank you! ${name} is saved on this phone.`);
      // The advice for the kind the person named: also when it was BinBot's own unsure guess,
      // or typed as "Something else" ("battery "), which the server files under that kind.
      const kind = label ?? state.entry.labels.find((l) => sameName(l.name, proposedName))?.name;
      if (kind) ui.showGuidanceFor(state.entry.labels, kind);
    }
  } catch (error) {
    ui.setStatus(`Could not save the correction: ${error.message}`);
    return;
  } finally {
    ui.elements.sendButton.disabled = false; // a slow upload must not hold the next photo's
  }
  requestBackgroundSync();
  await sendQueue().catch(() => {}); // it is saved either way; the queue line tells the rest
  await tellWhatBecameOf(item, name, saving);
}

/** Whether two names are one kind, as the server compares them (`binbot/names.py`: NFKC,
 * spaces collapsed, case folded; lower case stands in for case folding here). */
function sameName(a, b) {
  const key = (name) => name.normalize('NFKC').split(/\s+/).filter(Boolean).join(' ').toLowerCase();
  return key(a) === key(b);
}

/** Sent, refused (the server's reason, also in the list of corrections), or kept for later
 * (offline, or the server asked to wait): the thank-you says which. A name refused for what
 * it says ("the name mixes alphabets") opens again, as typed, to be put right and sent. */
async function tellWhatBecameOf(item, name, saving) {
  const kept = (await listCorrections()).find((i) => i.id === item.id);
  if (state.last !== saving) return; // another photo is on screen now
  if (!kept) ui.feedbackDone(`Thank you! ${name} was sent to BinBot.`);
  else if (kept.status === 'rejected' && kept.field === 'proposed_name') {
    saving.refused = kept.id;
    await refreshQueue();
    ui.askNameAgain(kept.proposedName, `BinBot did not take ${name}: ${kept.error}. Change the name and send it again.`);
  } else if (kept.status === 'rejected') ui.feedbackDone(`BinBot did not take ${name}: ${kept.error}`);
  else ui.feedbackDone(`Thank you! ${name} is saved on this phone and will be sent as soon as BinBot can be reached.`);
}

/** Why the live camera did not start, in words a person can act on (the browser's own
 * messages, "Permission denied" or "Requested device not found", name no way out). */
function cameraRefusal(error) {
  if (error?.name === 'NotAllowedError') {
    return 'BinBot may not use the camera: allow it in this site\'s settings, or use "Take a photo" instead.';
  }
  if (error?.name === 'NotFoundError' || error?.name === 'OverconstrainedError') {
    return 'This device has no camera BinBot can use. Use "Choose from gallery" instead.';
  }
  if (error?.name === 'NotReadableError') {
    return 'The camera is busy (another app may be using it). Close that app, or use "Take a photo" instead.';
  }
  return `The camera is not available (${error.message}). Use "Take a photo" instead.`;
}

function wireControls() {
  const { elements } = ui;
  watchFileInputs([elements.cameraInput, elements.galleryInput], classifyPhoto);
  const shownLabel = () => state.last?.result.ranked[0].label;
  elements.rightButton.addEventListener('click', () => shownLabel() && saveCorrection(shownLabel()));
  // "No": the picker starts on BinBot's runner-up, the likeliest right answer, never on the
  // kind the person just said is wrong (one press of Send filed the photo under it).
  const runnerUp = () => state.last?.result.ranked[1]?.label ?? ui.OTHER;
  elements.wrongButton.addEventListener('click', () => shownLabel() && ui.openLabelPicker(runnerUp()));
  elements.labelSelect.addEventListener('change', ui.syncOtherName);
  elements.labelPicker.addEventListener('submit', (event) => {
    event.preventDefault();
    if (elements.labelSelect.value === ui.OTHER) saveCorrection(null, elements.otherNameInput.value.trim());
    else saveCorrection(elements.labelSelect.value);
  });
  elements.updateButton.addEventListener('click', () => checkForNewModel({ quiet: false }));

  const camera = liveCamera(elements.video);
  const closeLive = () => { camera.close(); elements.liveView.hidden = true; elements.liveButton.focus(); };
  elements.liveButton.hidden = !liveCameraAvailable();
  elements.liveButton.addEventListener('click', async () => {
    elements.liveView.hidden = false;
    try {
      if (await camera.open()) elements.captureButton.focus();
    } catch (error) {
      elements.liveView.hidden = true;
      ui.setStatus(cameraRefusal(error));
    }
  });
  elements.captureButton.addEventListener('click', async () => {
    if (!elements.video.videoWidth) return; // the camera has not started yet
    const blob = await captureFrame(elements.video);
    closeLive();
    classifyPhoto(blob);
  });
  elements.closeLiveButton.addEventListener('click', closeLive);

  const connectivityChanged = () => {
    showModelLine();
    if (navigator.onLine) { sendQueue(); checkForNewModel(); }
  };
  window.addEventListener('online', connectivityChanged);
  window.addEventListener('offline', connectivityChanged);
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible' && navigator.onLine) { sendQueue(); checkForNewModel(); }
  });
  onQueueChange(refreshQueue);
  setInterval(() => checkForNewModel(), UPDATE_EVERY_MS);
  setInterval(async () => {
    if ((await listCorrections()).some((i) => i.status === 'waiting')) sendQueue();
  }, RETRY_QUEUE_EVERY_MS);
}

async function registerServiceWorker() {
  if (!('serviceWorker' in navigator)) return;
  try {
    await navigator.serviceWorker.register(new URL('sw.js', APP_BASE), { scope: APP_BASE.pathname });
  } catch (error) {
    console.warn('BinBot: no offline support, the service worker failed to register', error);
  }
}

async function start() {
  // The runtime (worker, TF.js, wasm) starts first, while the model is read from this device
  // or downloaded: neither waits for the other; the model is handed over once both are there.
  state.runtime = createClassifier({
    workerUrl: new URL('inference-worker.js', APP_BASE),
    wasmBase: new URL('tfjs/', APP_BASE).href,
    search: location.search,
  }).then(({ classifier, info }) => {
    state.classifier = classifier;
    state.info = info;
    markOnce('binbot:runtime-ready');
  });
  // A handle for the browser tests and benchmarks (and curious users' consoles): the same
  // classifier and update check the buttons use, nothing the page does not do itself.
  window.binbot = {
    state,
    modelReady,
    classify: (blob) => modelReady.then(async () => {
      const result = await state.classifier.classify(blob);
      return { ...result, verdict: verdict(state.openset, result.embedding, result.probabilities, NOT_SURE_BELOW) };
    }),
    checkForNewModel: () => checkForNewModel({ quiet: false }),
    sendQueue,
    cachedVersions,
    lastResult: null,
  };
  wireControls();
  // The service worker precaches the whole app shell (all three wasm builds among it): on a
  // first visit over a slow network that would compete with the model download, so it waits
  // until a model is in. A returning visitor's page is controlled by it already.
  modelReady.then(registerServiceWorker);
  refreshQueue();
  ui.setStatus('Starting…', { busy: true });
  const cached = await activeModel();
  if (cached) {
    try {
      await loadIntoClassifier(cached);
      ui.setStatus('');
    } catch (error) {
      await state.runtime; // a runtime that cannot start is not a damaged cache
      console.warn('BinBot: the cached model could not be used; downloading it again', error);
    }
  }
  if (!state.entry) await checkForNewModel({ quiet: false, force: Boolean(cached) });
  else checkForNewModel();
  await state.runtime; // its failure is the start's failure, whatever the model did
  sendQueue();
}

start().catch((error) => ui.setStatus(`BinBot could not start: ${error.message}`));
