// The reference the Go realtime gateway is measured against: what a team
// would write with the usual Node.js tools to do the same job. The npm
// socket.io server checks the JWT in the handshake, puts each socket in its
// user's room, and relays every message published on notify.user.<id> (a
// core NATS subscription, not JetStream) to that room as an event of the
// message's name. It has no connection-state recovery: only the live path
// is compared.
//
// Environment: PORT (default 38090), HOST (default 127.0.0.1), NATS_URL
// (default nats://127.0.0.1:4223), JWT_SECRET (required, HS256),
// JWT_ISSUER and JWT_AUDIENCE (checked when set).
import { createServer } from 'node:http';
import { Server } from 'socket.io';
import jwt from 'jsonwebtoken';
import { connect } from 'nats';

const port = Number(process.env.PORT || 38090);
const host = process.env.HOST || '127.0.0.1';
const natsURL = process.env.NATS_URL || 'nats://127.0.0.1:4223';
const secret = process.env.JWT_SECRET;
if (!secret) {
  console.error('reference-node: JWT_SECRET is required');
  process.exit(2);
}
const verifyOptions = { algorithms: ['HS256'] };
if (process.env.JWT_ISSUER) verifyOptions.issuer = process.env.JWT_ISSUER;
if (process.env.JWT_AUDIENCE) verifyOptions.audience = process.env.JWT_AUDIENCE;

// subjectToken mirrors contract.SubjectToken in Go, so that a user's room
// name is the token of their NATS subject and no unescaping is needed.
function subjectToken(id) {
  let out = '';
  for (const b of Buffer.from(id, 'utf8')) {
    const c = String.fromCharCode(b);
    out += /[A-Za-z0-9_-]/.test(c) ? c : '%' + b.toString(16).toUpperCase().padStart(2, '0');
  }
  return out === '' ? '%00' : out;
}

const httpServer = createServer();
const io = new Server(httpServer, { serveClient: false });

io.use((socket, next) => {
  const token = socket.handshake.auth && socket.handshake.auth.token;
  if (typeof token !== 'string' || token === '') {
    return next(new Error('missing token'));
  }
  try {
    const claims = jwt.verify(token, secret, verifyOptions);
    if (!claims.sub || !claims.exp) {
      return next(new Error('sub and exp are required'));
    }
    socket.data.user = subjectToken(String(claims.sub));
    return next();
  } catch (err) {
    return next(new Error(err.name === 'TokenExpiredError' ? 'token is expired' : 'invalid token'));
  }
});

io.on('connection', (socket) => {
  socket.join('user:' + socket.data.user);
});

const nc = await connect({ servers: natsURL, name: 'reference-node', maxReconnectAttempts: -1 });
const prefix = 'notify.user.';
const decoder = new TextDecoder();
nc.subscribe(prefix + '*', {
  callback: (err, msg) => {
    if (err) {
      console.error('reference-node: nats subscription:', err.message);
      return;
    }
    let m;
    try {
      m = JSON.parse(decoder.decode(msg.data));
    } catch {
      return; // not a user message: nothing a client could use
    }
    if (typeof m.event !== 'string') return;
    io.to('user:' + msg.subject.slice(prefix.length)).emit(m.event, m.data);
  },
});

httpServer.listen(port, host, () => {
  const a = httpServer.address();
  console.error(`reference-node: listening on ${a.address}:${a.port}, nats ${natsURL}, pid ${process.pid}`);
});

async function shutdown() {
  io.close();
  await nc.drain().catch(() => {});
  process.exit(0);
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
