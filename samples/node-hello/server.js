// node-hello: the lxdctl sample app (node's http module only).
// GET / names the app and its release (LXDCTL_RELEASE); /health is 200; /db and /redis say
// whether DATABASE_URL / REDIS_URL are set and whether their host:port accepts a TCP connection.
'use strict';
const http = require('http');
const net = require('net');

const APP = 'node-hello';

function greeting() {
  return `${APP} release ${process.env.LXDCTL_RELEASE || 'dev'}\n`;
}

function tcpCheck(url, defaultPort, callback) {
  if (!url) return callback({ set: false, reachable: false });
  let parsed;
  try { parsed = new URL(url); } catch (e) { return callback({ set: true, reachable: false, error: 'bad url' }); }
  const port = Number(parsed.port) || defaultPort;
  const result = { set: true, host: parsed.hostname, port, reachable: false };
  const sock = net.connect({ host: parsed.hostname, port, timeout: 2000 });
  sock.on('connect', () => { result.reachable = true; sock.destroy(); callback(result); });
  sock.on('timeout', () => { sock.destroy(); result.error = 'timeout'; callback(result); });
  sock.on('error', (err) => { result.error = err.message; callback(result); });
}

function handler(req, res) {
  const path = req.url.split('?')[0];
  const send = (code, body, type) => {
    res.writeHead(code, { 'Content-Type': type || 'text/plain; charset=utf-8' });
    res.end(body);
  };
  if (path === '/') return send(200, greeting());
  if (path === '/health') return send(200, 'ok\n');
  if (path === '/db') return tcpCheck(process.env.DATABASE_URL, 5432, (r) => send(200, JSON.stringify(r) + '\n', 'application/json'));
  if (path === '/redis') return tcpCheck(process.env.REDIS_URL, 6379, (r) => send(200, JSON.stringify(r) + '\n', 'application/json'));
  return send(404, 'not found\n');
}

if (require.main === module) {
  const port = Number(process.env.PORT || 3000);
  http.createServer(handler).listen(port, '0.0.0.0', () => {
    console.log(`${APP} release ${process.env.LXDCTL_RELEASE || 'dev'} listening on :${port}`);
  });
}

module.exports = { greeting, handler };
