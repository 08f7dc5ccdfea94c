/**
 * Rendering: what the user sees after each step. No state lives here; main.js decides.
 */

const $ = (id) => document.getElementById(id);
const percent = (p) => `${Math.round(p * 100)}%`;

export const elements = {
  status: $('status'),
  modelStatus: $('model-status'),
  queueStatus: $('queue-status'),
  queueList: $('queue-list'),
  queueNotice: $('queue-notice'),
  preview: $('preview'),
  result: $('result'),
  resultHeading: $('result-heading'),
  topList: $('top-list'),
  guidance: $('guidance'),
  feedback: $('feedback'),
  feedbackHeading: $('feedback-heading'),
  feedbackMessage: $('feedback-message'),
  labelPicker: $('label-picker'),
  labelSelect: $('label-select'),
  otherName: $('other-name'),
  otherNameInput: $('other-name-input'),
  hint: $('hint'),
  cameraInput: $('camera-input'),
  galleryInput: $('gallery-input'),
  liveButton: $('live-button'),
  liveView: $('live-view'),
  video: $('live-video'),
  captureButton: $('capture-button'),
  closeLiveButton: $('close-live-button'),
  rightButton: $('right-button'),
  wrongButton: $('wrong-button'),
  sendButton: $('send-button'),
  updateButton: $('update-button'),
};

export function setStatus(text, { busy = false } = {}) {
  elements.status.textContent = text;
  elements.status.setAttribute('aria-busy', String(busy));
}

/** The model line: version, runtime, online or not, and `unkept` (why the model is not kept). */
export function showModel(entry, info, online, unkept = null) {
  const parts = [entry ? `Model ${entry.version}` : 'No model yet'];
  if (info) parts.push(`${info.backend}${info.simd ? ' SIMD' : ''}${info.backend === 'wasm' ? `, ${info.threads} thread${info.threads === 1 ? '' : 's'}` : ''}`);
  parts.push(online ? 'online' : 'offline');
  if (unkept) parts.push(`not kept for offline use: ${unkept}`);
  elements.modelStatus.textContent = parts.join(' · ');
  elements.modelStatus.dataset.version = entry?.version ?? '';
}

export function showPreview(blob) {
  if (elements.preview.src) URL.revokeObjectURL(elements.preview.src);
  elements.preview.src = URL.createObjectURL(blob);
  elements.preview.hidden = false;
}

function renderGuidance(entry) {
  const { guidance } = entry;
  const box = elements.guidance;
  box.replaceChildren();
  const title = document.createElement('h3');
  title.textContent = `How to dispose of it: ${guidance.bin}`;
  const category = document.createElement('p');
  category.textContent = guidance.category;
  const steps = document.createElement('ol');
  for (const step of guidance.steps) steps.append(Object.assign(document.createElement('li'), { textContent: step }));
  box.append(title, category, steps);
  if (guidance.hazards.length) {
    box.append(Object.assign(document.createElement('p'), { className: 'hazards', textContent: `Hazards: ${guidance.hazards.join(', ')}` }));
  }
  box.append(Object.assign(document.createElement('p'), { className: 'note', textContent: guidance.note }));
  if (guidance.link?.startsWith('https://')) {
    const paragraph = Object.assign(document.createElement('p'), { className: 'link' });
    paragraph.append(Object.assign(document.createElement('a'), { href: guidance.link, textContent: 'Rules where you live', rel: 'noopener noreferrer' }));
    box.append(paragraph);
  }
  box.hidden = false;
}

const HEADINGS = {
  known: (best) => `${best.label} (${percent(best.probability)})`,
  unsure: () => 'Not sure. Is it one of these? Please choose below.',
  unknown: () => "BinBot doesn't recognise this",
};
const GENERAL_HINT = 'This does not look like anything BinBot knows. If it runs on electricity or '
  + 'batteries, it belongs at an e-waste collection point, never in household waste; otherwise, '
  + 'check your municipality\'s sorting guide.';

function renderTopList(ranked) {
  elements.topList.replaceChildren();
  for (const { label, probability } of ranked.slice(0, 3)) {
    const item = document.createElement('li');
    const name = Object.assign(document.createElement('span'), { className: 'label', textContent: label });
    const meter = Object.assign(document.createElement('meter'), { min: 0, max: 1, value: probability });
    meter.setAttribute('aria-label', `${label} confidence`);
    const value = Object.assign(document.createElement('span'), { className: 'value', textContent: percent(probability) });
    item.append(name, meter, value);
    elements.topList.append(item);
  }
}

/**
 * The verdict (result.verdict): "known" shows the kind and its advice; "unsure" the top 3 and
 * the picker; "unknown" no advice that pretends to know, a general hint, and the picker with
 * "Something else…". Focus moves to the heading.
 */
export function showResult(result, labels) {
  const [best] = result.ranked;
  const { verdict } = result;
  const known = verdict === 'known';
  elements.result.hidden = false;
  Object.assign(elements.result.dataset, { top: best.label, sure: String(known), verdict, label: known ? best.label : '' });
  elements.resultHeading.textContent = HEADINGS[verdict](best);
  elements.topList.hidden = verdict === 'unknown';
  renderTopList(result.ranked);
  elements.hint.hidden = verdict !== 'unknown';
  elements.hint.textContent = GENERAL_HINT;
  const entry = labels.find((l) => l.name === best.label);
  if (known && entry) renderGuidance(entry);
  else elements.guidance.hidden = true;
  elements.feedback.hidden = false;
  elements.feedbackHeading.textContent = known ? 'Did BinBot get it right?' : 'Tell BinBot what it is';
  elements.feedbackMessage.textContent = '';
  elements.labelPicker.hidden = known;
  elements.labelSelect.value = verdict === 'unsure' ? best.label : OTHER;
  elements.otherNameInput.value = ''; // a new photo: not the name given to the one before
  syncOtherName();
  elements.rightButton.hidden = !known;
  elements.wrongButton.hidden = !known;
  elements.resultHeading.focus();
}

/** No verdict on screen: a new photo is being read. */
export function hideResult() {
  elements.result.hidden = true;
}

/** The advice for the kind the person chose, in place of the general hint. */
export function showGuidanceFor(labels, name) {
  const entry = labels.find((l) => l.name === name);
  if (!entry) return;
  renderGuidance(entry);
  elements.hint.hidden = true;
}

/** The picker's value for "Something else…" (never a kind's name: it has a symbol no name has). */
export const OTHER = '\u2026other';

export function fillLabelPicker(labels) {
  const select = elements.labelSelect;
  const chosen = select.value;
  select.replaceChildren(...labels.map(({ name }) => new Option(name, name)), new Option('Something else…', OTHER));
  if (labels.some((l) => l.name === chosen) || chosen === OTHER) select.value = chosen;
}

/** The free-text name field shows only for "Something else…". */
export function syncOtherName() {
  const other = elements.labelSelect.value === OTHER;
  elements.otherName.hidden = !other;
  elements.otherNameInput.required = other;
}

export function openLabelPicker(current) {
  elements.labelPicker.hidden = false;
  elements.labelSelect.value = current;
  syncOtherName();
  elements.labelSelect.focus();
}

/** The name field again, holding the name the server refused, with its reason. */
export function askNameAgain(name, text) {
  askAgain(OTHER, name, text);
  elements.otherNameInput.select();
}

/** The picker open again on `choice` (a kind, or OTHER with `name`), saying why in `text`. */
export function askAgain(choice, name, text) {
  elements.labelPicker.hidden = false;
  elements.labelSelect.value = choice;
  syncOtherName();
  if (choice === OTHER) elements.otherNameInput.value = name;
  elements.feedbackMessage.textContent = text;
  (choice === OTHER ? elements.otherNameInput : elements.labelSelect).focus();
}

export function feedbackDone(text) {
  elements.labelPicker.hidden = true;
  elements.rightButton.hidden = true;
  elements.wrongButton.hidden = true;
  elements.feedbackMessage.textContent = text;
}

// Object URLs of the waiting photos' thumbnails, released when the list is drawn again.
let thumbnails = [];

/**
 * The queue's line, each refused correction with its reason and Dismiss, and each one still
 * waiting with its photo and "Don't send". One refused for its name (sent offline, refused
 * later) offers the name to put right and send again, unless its photo is on screen with the
 * name form open already (`editing`: its id).
 */
export function showQueue(items, pausedUntil, blocked, { onDismiss, onRename, onWithdraw, editing = null }) {
  const waiting = items.filter((i) => i.status === 'waiting');
  const rejected = items.filter((i) => i.status === 'rejected');
  elements.queueStatus.dataset.waiting = String(waiting.length);
  elements.queueStatus.dataset.rejected = String(rejected.length);
  elements.queueStatus.dataset.pausedUntil = String(pausedUntil);
  elements.queueStatus.dataset.blocked = String(Boolean(waiting.length && blocked));
  let later = '';
  if (waiting.length && pausedUntil) {
    later = ` (the server is busy; next try at ${new Date(pausedUntil).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })})`;
  } else if (waiting.length && blocked) {
    later = ' (something on this network answers in BinBot\'s place: a Wi-Fi sign-in page?)';
  }
  elements.queueStatus.textContent = waiting.length
    ? `${waiting.length} correction${waiting.length === 1 ? '' : 's'} waiting to be sent${later}`
    : 'No corrections waiting';
  for (const url of thumbnails) URL.revokeObjectURL(url);
  thumbnails = [];
  elements.queueList.replaceChildren();
  for (const item of rejected) {
    const li = document.createElement('li');
    li.textContent = `Not accepted by the server (${item.label ?? item.proposedName}): ${item.error} `;
    if (item.field === 'proposed_name' && item.id !== editing) li.append(renameForm(item, onRename));
    li.append(listButton('Dismiss', () => onDismiss(item.id), item.label ?? `"${item.proposedName}"`));
    elements.queueList.append(li);
  }
  for (const item of waiting) elements.queueList.append(waitingEntry(item, onWithdraw));
}

/** A correction not sent yet: its photo, what it says, and a way to take it back. */
function waitingEntry(item, onWithdraw) {
  const li = Object.assign(document.createElement('li'), { className: 'waiting' });
  const url = URL.createObjectURL(item.photo);
  thumbnails.push(url);
  const said = item.label ?? `"${item.proposedName}"`;
  const when = savedWhen(new Date(item.createdAt));
  const thumbnail = Object.assign(document.createElement('img'), { src: url, alt: `Photo corrected to ${said}` });
  const text = document.createElement('span');
  text.append(
    Object.assign(document.createElement('strong'), { textContent: said }),
    Object.assign(document.createElement('small'), { textContent: `saved ${when}` }),
  );
  li.append(thumbnail, text, listButton('Don\'t send', () => onWithdraw(item.id), `${said}, saved ${when}`));
  return li;
}

/** "at 14:05" today; "on 5 Dec, 14:05" before (a phone offline for days holds several). */
function savedWhen(date) {
  const time = { hour: '2-digit', minute: '2-digit' };
  if (date.toDateString() === new Date().toDateString()) return `at ${date.toLocaleTimeString([], time)}`;
  return `on ${date.toLocaleString([], { day: 'numeric', month: 'short', ...time })}`;
}

/** A button of the list, good for one press: the list is drawn afresh once its work is done
 * (a second press of "Don't send" on the same correction said it "had been sent already").
 * `about`: the correction it acts on, in words. */
function listButton(text, onClick, about) {
  const button = Object.assign(document.createElement('button'), { type: 'button', className: 'button', textContent: text });
  // Which correction it acts on, for a screen reader moving from button to button: a list of
  // identical "Don't send" buttons names none.
  button.setAttribute('aria-label', `${text}: ${about}`);
  button.addEventListener('click', () => {
    button.disabled = true;
    onClick();
  });
  return button;
}

/** What became of a correction the person tried to take back ('' to clear). */
export function showQueueNotice(text) {
  elements.queueNotice.textContent = text;
  elements.queueNotice.hidden = !text;
}

function renameForm(item, onRename) {
  const form = Object.assign(document.createElement('form'), { className: 'rename' });
  const label = Object.assign(document.createElement('label'), { textContent: 'Another name ' });
  const input = Object.assign(document.createElement('input'), {
    type: 'text', maxLength: 60, required: true, autocomplete: 'off', value: item.proposedName,
  });
  label.append(input);
  const send = Object.assign(document.createElement('button'), { type: 'submit', className: 'button primary', textContent: 'Send again' });
  form.append(label, send);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    onRename(item.id, input.value.trim());
  });
  return form;
}
