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

/** Start the back camera in `video`; resolves to a function that stops it. */
export async function startLiveCamera(video) {
  const stream = await navigator.mediaDevices.getUserMedia({
    video: { facingMode: { ideal: 'environment' }, width: { ideal: 1280 }, height: { ideal: 1280 } },
    audio: false,
  });
  video.srcObject = stream;
  await video.play();
  return () => {
    stream.getTracks().forEach((track) => track.stop());
    video.srcObject = null;
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
