import { Realtime } from "./realtime.js";
import { showConnection } from "./shell.js";

const realtime = new Realtime({ gate: document.body.dataset.gate || "main" });
showConnection(realtime);
realtime.start();
