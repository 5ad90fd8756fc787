import { Realtime } from "./realtime.js";
import { showConnection } from "./shell.js";

const realtime = new Realtime();
showConnection(realtime);
realtime.start();
