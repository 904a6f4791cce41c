// A scriptable socket.io-client for the Go end-to-end tests: it reads one
// JSON command per line on stdin and prints one JSON observation per line on
// stdout. Each command names a tab (one io() socket with its own Manager).
import { io } from "socket.io-client";
import readline from "node:readline";

const tabs = new Map();
// t is when the observation was made, in ms on the process's monotonic clock.
const out = (o) => process.stdout.write(JSON.stringify({ ...o, t: performance.now() }) + "\n");

function open(cmd) {
  const opts = { auth: { token: cmd.token }, forceNew: true };
  if (cmd.transports) opts.transports = cmd.transports;
  // Node.js keeps cookies (a proxy's affinity cookie) only when asked to,
  // as a browser does for its page's origin.
  if (cmd.withCredentials) opts.withCredentials = true;
  if (cmd.reconnectionDelay) opts.reconnectionDelay = cmd.reconnectionDelay;
  const socket = io(cmd.url, opts);
  const tab = cmd.tab;
  tabs.set(tab, socket);
  socket.on("connect", () =>
    out({ tab, type: "connect", recovered: socket.recovered, id: socket.id, pid: socket._pid ?? null,
      transport: socket.io.engine.transport.name }));
  socket.on("connect_error", (err) => out({ tab, type: "connect_error", message: err.message, data: err.data ?? null }));
  socket.on("disconnect", (reason, details) =>
    out({ tab, type: "disconnect", reason, data: details ? { description: String(details.description?.message ?? details.description) } : null }));
  socket.io.on("open", () => {
    out({ tab, type: "open", transport: socket.io.engine.transport.name });
    socket.io.engine.on("upgrade", (t) => out({ tab, type: "upgrade", transport: t.name }));
  });
  socket.onAny((event, ...args) => out({ tab, type: "event", event, args }));
}

const commands = {
  open,
  // Cut the connection as a network failure would, without reconnecting
  // until "reconnect".
  drop: (cmd) => {
    const s = tabs.get(cmd.tab);
    s.io.reconnection(false);
    s.io.engine.close();
  },
  reconnect: (cmd) => {
    const s = tabs.get(cmd.tab);
    if (cmd.token) s.auth.token = cmd.token;
    s.io.reconnection(true);
    s.connect();
  },
  emit: (cmd) => {
    const s = tabs.get(cmd.tab);
    s.emit(cmd.event, ...(cmd.args ?? []), (...res) => out({ tab: cmd.tab, type: "ack", event: cmd.event, args: res }));
  },
  close: (cmd) => {
    tabs.get(cmd.tab)?.disconnect();
    tabs.delete(cmd.tab);
  },
  exit: () => {
    for (const s of tabs.values()) s.disconnect();
    process.exit(0);
  },
};

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  if (!line.trim()) return;
  let cmd;
  try {
    cmd = JSON.parse(line);
  } catch (e) {
    out({ type: "error", message: "bad command: " + e.message });
    return;
  }
  const fn = commands[cmd.cmd];
  if (!fn) {
    out({ type: "error", message: "unknown command " + cmd.cmd });
    return;
  }
  try {
    fn(cmd);
    out({ tab: cmd.tab ?? null, type: "done", cmd: cmd.cmd });
  } catch (e) {
    out({ tab: cmd.tab ?? null, type: "error", message: String(e) });
  }
});
process.stdin.on("end", () => commands.exit());
out({ type: "ready" });
