// A webhook receiver as an integrator writes it. It listens on 127.0.0.1
// (printing its port), takes the secret from the first line of standard
// input (the webhook, and so its secret, is created after the receiver's
// URL is known), and for every delivery prints one JSON line saying whether
// the integrators' snippet and the standardwebhooks package accept it.
import crypto from 'node:crypto';
import http from 'node:http';
import readline from 'node:readline';
import { Webhook } from 'standardwebhooks';

const rl = readline.createInterface({ input: process.stdin });
let secret = '';
rl.once('line', (line) => { secret = line.trim(); });

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const rawBody = Buffer.concat(chunks);
    const headers = req.headers;
    if (!secret) { // not configured yet: the dispatcher retries
      res.writeHead(503).end('no secret yet');
      return;
    }

    // The integrators' code, verbatim.
    const signature = crypto.createHmac('sha256', secret).update(rawBody).digest('hex');
    const isValid = `sha256=${signature}` === headers['x-webhook-signature'];

    let standard = false;
    let standardError = null;
    try {
      new Webhook(secret).verify(rawBody.toString('utf8'), headers);
      standard = true;
    } catch (err) {
      standardError = String(err && err.message);
    }
    let tampered = true;
    try {
      new Webhook(secret).verify(rawBody.toString('utf8') + ' ', headers);
    } catch {
      tampered = false;
    }
    console.log(JSON.stringify({
      snippet: isValid, standard, standardError, tamperedAccepted: tampered,
      webhookId: headers['webhook-id'], xWebhookId: headers['x-webhook-id'], body: rawBody.toString('utf8'),
    }));
    res.writeHead(isValid && standard ? 200 : 400, { 'content-type': 'text/plain' });
    res.end(isValid && standard ? 'verified' : 'rejected');
  });
});

server.listen(0, '127.0.0.1', () => {
  console.log(JSON.stringify({ port: server.address().port }));
});
rl.on('close', () => server.close());
