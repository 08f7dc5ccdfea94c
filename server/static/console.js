// The console's little bit of behaviour: "select all" in the gallery, a relabel target only
// when relabelling, a question before a rollback or a deletion, and live progress on a job
// page (polls its JSON every 2 s until it ends).

const selectAll = document.getElementById('select-all');
selectAll?.addEventListener('change', () => {
  for (const box of document.querySelectorAll('input[name="ids"]')) box.checked = selectAll.checked;
});

const action = document.getElementById('bulk-action');
const label = document.getElementById('bulk-label');
const syncLabel = () => { if (label) label.disabled = action.value !== 'relabel'; };
action?.addEventListener('change', syncLabel);
if (action) syncLabel();

// A press that changes the model every phone gets, or deletes what cannot be brought back,
// asks first: a stray click on "Roll back" or "Delete" acted at once.
for (const form of document.querySelectorAll('form[data-confirm]')) {
  form.addEventListener('submit', (event) => {
    if (!window.confirm(form.dataset.confirm)) event.preventDefault();
  });
}

const job = document.getElementById('job');
const FINISHED = new Set(['succeeded', 'failed', 'cancelled']);

function cell(text) {
  const td = document.createElement('td');
  td.textContent = text;
  return td;
}

const duration = (seconds) => (seconds >= 90 ? `${(seconds / 60).toFixed(1)} min` : `${Math.round(seconds)} s`);

/** "· 42 s per epoch, at most 3.5 min of training left", from the job's progress data. */
function timeLeft({ seconds_per_epoch: perEpoch, eta_seconds: eta, step, step_eta_seconds: stepEta }) {
  const parts = [];
  if (perEpoch) parts.push(`${Math.round(perEpoch)} s per epoch`);
  if (eta) parts.push(`at most ${duration(eta)} of training left`);
  if (step && !eta) parts.push(stepEta ? `${step}, ${duration(stepEta)} left` : step);
  return parts.length ? `· ${parts.join(', ')}` : '';
}

async function poll() {
  let data;
  try {
    const response = await fetch(job.dataset.url, { headers: { Accept: 'application/json' } });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    data = await response.json();
  } catch {
    setTimeout(poll, 5000);
    return;
  }
  const { job: state, training } = data;
  document.getElementById('job-status').textContent = state.status;
  job.dataset.status = state.status;
  document.getElementById('job-phase').textContent = training.phase
    ? `· ${training.phase} epoch ${training.epoch}/${training.epochs}` : '';
  document.getElementById('job-eta').textContent = FINISHED.has(state.status) ? '' : timeLeft(training);
  const body = document.querySelector('#epochs tbody');
  body.replaceChildren(...training.history.map((e) => {
    const row = document.createElement('tr');
    row.append(cell(e.phase), cell(`${e.phase_epoch}/${e.epochs}`), cell(e.loss.toFixed(4)),
      cell(e.accuracy.toFixed(4)), cell(e.val_loss.toFixed(4)), cell(e.val_accuracy.toFixed(4)));
    return row;
  }));
  const log = document.getElementById('job-log');
  const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
  log.textContent = state.log ?? '';
  if (atBottom) log.scrollTop = log.scrollHeight;
  const error = document.getElementById('job-error');
  error.hidden = !state.error;
  error.textContent = state.error ?? '';
  if (FINISHED.has(state.status)) {
    document.getElementById('cancel-form')?.remove();
    // The result block is rendered by the server: reload once to show it.
    if (state.status === 'succeeded' && document.getElementById('job-result').hidden) location.reload();
    return;
  }
  setTimeout(poll, 2000);
}

if (job && !FINISHED.has(job.dataset.status)) poll();
