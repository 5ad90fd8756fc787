// The gate tablet's camera: a QR scanner (jsQR, loaded the first time the guard opens it) and a photo
// snapshot for walk-ins. Where the browser refuses the camera (no permission, plain http, no camera)
// both say so and the typed code / the file input remain.
import { t } from "./i18n.js";

let jsqrLoading = null;

/** Load the vendored jsQR (a classic script defining window.jsQR) once, on first use. */
function loadJsQR(url) {
  if (window.jsQR) return Promise.resolve(window.jsQR);
  if (!jsqrLoading) {
    jsqrLoading = new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = url;
      script.onload = () => (window.jsQR ? resolve(window.jsQR) : reject(new Error("jsQR did not load")));
      script.onerror = () => {
        jsqrLoading = null;
        reject(new Error("jsQR did not load"));
      };
      document.head.append(script);
    });
  }
  return jsqrLoading;
}

export function cameraAvailable() {
  return Boolean(navigator.mediaDevices && navigator.mediaDevices.getUserMedia);
}

async function openStream(video) {
  const stream = await navigator.mediaDevices.getUserMedia({
    video: { facingMode: { ideal: "environment" }, width: { ideal: 1280 }, height: { ideal: 720 } },
    audio: false,
  });
  video.srcObject = stream;
  await video.play();
  return stream;
}

function stopStream(video, stream) {
  if (stream) for (const track of stream.getTracks()) track.stop();
  video.srcObject = null;
}

/** Why the camera cannot be used, in the guard's words. */
export function cameraProblem(error) {
  if (!cameraAvailable()) return t("This browser cannot use the camera here. Type the code instead.");
  if (error && error.name === "NotAllowedError") return t("The camera is not allowed. Type the code instead.");
  if (error && error.name === "NotFoundError") return t("No camera found. Type the code instead.");
  return t("The camera could not start. Type the code instead.");
}

/**
 * A QR scanner on a <video>: calls onCode(text) once when a QR code is read, then stops.
 * Returns {stop()}; throws (with a message for the guard) when the camera cannot start.
 */
export async function startScanner(video, jsqrUrl, onCode) {
  if (!cameraAvailable()) throw new Error(cameraProblem(null));
  const [jsQR, stream] = await Promise.all([loadJsQR(jsqrUrl), openStream(video)]);
  const canvas = document.createElement("canvas");
  const context = canvas.getContext("2d", { willReadFrequently: true });
  let running = true;
  let timer = null;
  const scan = () => {
    if (!running) return;
    if (video.readyState >= 2 && video.videoWidth) {
      // A reduced frame is plenty for a QR at arm's length and keeps a cheap tablet responsive.
      const scale = Math.min(1, 640 / video.videoWidth);
      canvas.width = Math.round(video.videoWidth * scale);
      canvas.height = Math.round(video.videoHeight * scale);
      context.drawImage(video, 0, 0, canvas.width, canvas.height);
      const image = context.getImageData(0, 0, canvas.width, canvas.height);
      const found = jsQR(image.data, image.width, image.height, { inversionAttempts: "dontInvert" });
      if (found && found.data) {
        controller.stop();
        onCode(found.data);
        return;
      }
    }
    timer = setTimeout(scan, 200);
  };
  const controller = {
    stop() {
      running = false;
      clearTimeout(timer);
      stopStream(video, stream);
    },
  };
  scan();
  return controller;
}

/** A live camera preview on a <video> with snap() -> a JPEG Blob of the current frame. */
export async function startPhotoCamera(video) {
  if (!cameraAvailable()) throw new Error(cameraProblem(null));
  const stream = await openStream(video);
  return {
    snap() {
      const canvas = document.createElement("canvas");
      const scale = Math.min(1, 1024 / (video.videoWidth || 1024));
      canvas.width = Math.round((video.videoWidth || 640) * scale);
      canvas.height = Math.round((video.videoHeight || 480) * scale);
      canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
      return new Promise((resolve, reject) =>
        canvas.toBlob((blob) => (blob ? resolve(blob) : reject(new Error("no photo"))), "image/jpeg", 0.85),
      );
    },
    stop() {
      stopStream(video, stream);
    },
  };
}
