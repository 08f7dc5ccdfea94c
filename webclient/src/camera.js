/**
 * Getting a photo: the phone's camera app (file input with `capture`), the gallery, or a live
 * camera view (getUserMedia) where the browser allows it. Every path ends in a Blob.
 */

/**
 * Call `onPhoto(blob)` whenever one of the file inputs gets a file, including a file chosen
 * before this script ran (on a slow network the page is usable before its scripts arrive).
 */
export function watchFileInputs(inputs, onPhoto) {
  for (const input of inputs) {
    const take = () => {
      const [file] = input.files ?? [];
      if (file) onPhoto(file);
      input.value = ''; // choosing the same file again must fire 'change' again
    };
    input.addEventListener('change', take);
    if (input.files?.length) take();
  }
}

export function liveCameraAvailable() {
  return Boolean(navigator.mediaDevices?.getUserMedia);
}

/**
 * The live camera view in `video`: at most one camera on, and off once closed. A phone's camera
 * takes a moment to start (longer while its permission prompt is open), so a second tap, or a
 * close, can come before the first start has finished: each start and close supersedes the
 * ones before it, and a camera that arrives for a superseded start is stopped at once.
 */
export function liveCamera(video) {
  let turn = 0;
  let stream = null;
  const stop = () => {
    stream?.getTracks().forEach((track) => track.stop());
    stream = null;
    video.srcObject = null;
  };
  return {
    /** Start the back camera; resolves to false when closed or reopened before it started. */
    async open() {
      const mine = ++turn;
      stop();
      let started;
      try {
        started = await navigator.mediaDevices.getUserMedia({
          video: { facingMode: { ideal: 'environment' }, width: { ideal: 1280 }, height: { ideal: 1280 } },
          audio: false,
        });
      } catch (error) {
        if (mine !== turn) return false; // refused, but the user has moved on
        throw error;
      }
      if (mine !== turn) {
        started.getTracks().forEach((track) => track.stop());
        return false;
      }
      stream = started;
      video.srcObject = stream;
      try {
        await video.play();
      } catch (error) {
        if (mine !== turn) return false; // closed while it began to play
        stop();
        throw error;
      }
      return mine === turn;
    },
    close() {
      turn += 1;
      stop();
    },
  };
}

/** The current video frame as a JPEG Blob (frames have no EXIF: they are already upright). */
export function captureFrame(video) {
  const canvas = document.createElement('canvas');
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  canvas.getContext('2d').drawImage(video, 0, 0);
  return new Promise((resolve, reject) => {
    canvas.toBlob((blob) => (blob ? resolve(blob) : reject(new Error('could not capture a frame'))), 'image/jpeg', 0.92);
  });
}
