// Drives the official `phoenix` client against a running appliance for
// tests/test_phoenix_client.py. Node 20 has no global WebSocket (the client would fall
// back to long polling), so the `ws` package is passed as the transport.
//
//   node watch.mjs ENDPOINT TOKEN
//
// Reads JSON commands from stdin, one a line, and writes what happens to stdout as JSON
// lines:
//   {"join": TOPIC}                         -> {"kind": "join", topic, status, response}
//   {"leave": TOPIC}                        -> {"kind": "leave", topic, status}
//   {"push": TOPIC, "event": E, "payload": P} -> {"kind": "reply", topic, event, status, response}
// and every message a joined channel gets -> {"kind": "message", topic, event, payload}.
// Socket events: {"kind": "open"}, {"kind": "close", code}, {"kind": "socket_error"}.
// Ends when stdin closes.
import { Socket } from "phoenix";
import WebSocket from "ws";
import readline from "node:readline";

const [endpoint, token] = process.argv.slice(2);
const out = (line) => process.stdout.write(JSON.stringify(line) + "\n");

const socket = new Socket(endpoint, {
  transport: WebSocket,
  params: { token },
  reconnectAfterMs: () => 60_000, // a test sees a close as it is, not hidden by a reconnect
  rejoinAfterMs: () => 60_000,
  heartbeatIntervalMs: 500, // the test server closes a socket silent for 2 s
});
socket.onOpen(() => out({ kind: "open", transport: socket.transport.name || "websocket" }));
socket.onClose((event) => out({ kind: "close", code: event.code, reason: event.reason }));
socket.onError(() => out({ kind: "socket_error" }));
socket.connect();

const channels = new Map();
const answer = (push, line) =>
  push
    .receive("ok", (response) => out({ ...line, status: "ok", response }))
    .receive("error", (response) => out({ ...line, status: "error", response }))
    .receive("timeout", () => out({ ...line, status: "timeout" }));

readline.createInterface({ input: process.stdin }).on("line", (text) => {
  const command = JSON.parse(text);
  if (command.join) {
    const topic = command.join;
    const channel = socket.channel(topic, command.params || {});
    channel.onMessage = (event, payload) => {
      if (!event.startsWith("phx_") && !event.startsWith("chan_reply_")) out({ kind: "message", topic, event, payload });
      return payload;
    };
    channel.onError((reason) => out({ kind: "channel_error", topic, reason }));
    channels.set(topic, channel);
    answer(channel.join(), { kind: "join", topic });
  } else if (command.leave) {
    answer(channels.get(command.leave).leave(), { kind: "leave", topic: command.leave });
  } else if (command.push) {
    const channel = channels.get(command.push);
    answer(channel.push(command.event, command.payload || {}), { kind: "reply", topic: command.push, event: command.event });
  }
}).on("close", () => {
  socket.disconnect(() => process.exit(0));
  setTimeout(() => process.exit(0), 1000);
});
