// The mixed benchmark's load generator (scripts/bench_mixed.py writes its input and reads its output).
//
//   node loadgen.js --target HOST:PORT --ops FILE --duration S [--concurrency N | --rate R]
//                   [--connections C] [--key API_KEY] [--baseline] [--seed N] [--start I]
//
// FILE holds pre-encoded request bodies, one operation each, sent in file order from the I-th
// (wrapping; the output's `next` is where the next run should start, so runs send new bodies):
//   u8 kind, u32 key offset, u32 length, body   (big-endian; a key offset of 0 means none)
// kinds: 0 GetAvailability, 1 BatchGetAvailability, 2 SearchNearby, 3 CreateReservation (then
// ReleaseReservation of the reservation it made). For kind 3 the 32 bytes at the key offset are
// the idempotency key, replaced by a fresh one on every send, so a wrapped file still makes new holds.
//
// --concurrency: closed loop, N operations in flight. --rate: open loop, Poisson arrivals at R
// operations a second whatever the answers do; latency counts from the send, as h2load's does, and
// max_send_lag_ms says how late the generator sent against the schedule (a timer tick is ~1 ms). --baseline: every call goes to the empty
// handler (/bench.Empty/Call) with the same bodies; a hold is two calls there too.
// Prints one JSON object: calls and operations per second, latencies per kind, status codes, and the
// generator's own CPU time over the measured wall time.
'use strict';
const fs = require('fs');
const crypto = require('crypto');
const http2 = require('http2');

// gRPC's status codes, by number. @grpc/grpc-js is loaded only for --client grpc-js.
const STATUS_NAMES = ['OK', 'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND',
  'ALREADY_EXISTS', 'PERMISSION_DENIED', 'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION', 'ABORTED',
  'OUT_OF_RANGE', 'UNIMPLEMENTED', 'INTERNAL', 'UNAVAILABLE', 'DATA_LOSS', 'UNAUTHENTICATED'];
const UNKNOWN = 2;
const UNAVAILABLE = 14;

function parseArgs(argv) {
  const args = { start: 0, client: 'http2', connections: 4, concurrency: 0, rate: 0, duration: 10, key: '', baseline: false, seed: 1, warmup: 1 };
  for (let i = 2; i < argv.length; i++) {
    const name = argv[i].replace(/^--/, '');
    if (name === 'baseline') { args.baseline = true; continue; }
    const value = argv[++i];
    args[name] = ['target', 'ops', 'key', 'client'].includes(name) ? value : Number(value);
  }
  return args;
}

function readOps(path) {
  const data = fs.readFileSync(path);
  const ops = [];
  for (let at = 0; at < data.length;) {
    const kind = data.readUInt8(at);
    const keyOffset = data.readUInt32BE(at + 1);
    const length = data.readUInt32BE(at + 5);
    const body = data.subarray(at + 9, at + 9 + length);
    // Framed once here (flag 0, length, message) for the HTTP/2 client.
    const framed = Buffer.alloc(5 + length);
    framed.writeUInt32BE(length, 1);
    body.copy(framed, 5);
    ops.push({ kind, keyOffset, body, framed });
    at += 9 + length;
  }
  return ops;
}

// The reservation_id of a CreateReservationResponse: field 1 (Reservation) holds field 1 (string).
function readVarint(buf, at) {
  let value = 0, shift = 0, byte;
  do { byte = buf[at++]; value += (byte & 0x7f) * 2 ** shift; shift += 7; } while (byte & 0x80);
  return [value, at];
}
function reservationId(response) {
  if (response.length < 2 || response[0] !== 0x0a) return null;
  let [, at] = readVarint(response, 1);
  if (response[at] !== 0x0a) return null;
  let length;
  [length, at] = readVarint(response, at + 1);
  return response.subarray(at, at + length);
}
function releaseBody(id) {
  return Buffer.concat([Buffer.from([0x0a, id.length]), id]);
}

const identity = (b) => b;
const PATHS = [
  '/omnistock.v1.AvailabilityService/GetAvailability',
  '/omnistock.v1.AvailabilityService/BatchGetAvailability',
  '/omnistock.v1.AvailabilityService/SearchNearby',
  '/omnistock.v1.ReservationService/CreateReservation',
];
const RELEASE = '/omnistock.v1.ReservationService/ReleaseReservation';
const EMPTY = '/bench.Empty/Call';
const NAMES = ['GetAvailability', 'BatchGetAvailability', 'SearchNearby', 'CreateReservation+Release'];

function percentile(sorted, p) {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function main() {
  const args = parseArgs(process.argv);
  const ops = readOps(args.ops);
  const grpc = args.client === 'grpc-js' ? require('@grpc/grpc-js') : null;
  const clients = [];
  for (let i = 0; args.client === 'http2' && i < args.connections; i++) {
    const session = http2.connect(`http://${args.target}`);
    session.on('error', (error) => { console.error(error); process.exit(1); });
    clients.push(session);
  }
  if (args.client === 'http2') await Promise.all(clients.map((s) => new Promise((resolve) => s.once('connect', resolve))));
  for (let i = 0; args.client === 'grpc-js' && i < args.connections; i++) {
    // A local subchannel pool: each client its own HTTP/2 connection.
    clients.push(new grpc.Client(args.target, grpc.credentials.createInsecure(), {
      'grpc.use_local_subchannel_pool': 1,
      'grpc.max_receive_message_length': 64 * 1024 * 1024,
    }));
  }
  if (args.client === 'grpc-js') await Promise.all(clients.map((c) => new Promise((resolve, reject) =>
    c.waitForReady(Date.now() + 10000, (e) => (e ? reject(e) : resolve())))));
  const metadata = grpc ? new grpc.Metadata() : null;
  if (grpc && args.key) metadata.set('authorization', `Bearer ${args.key}`);

  let next = args.start % ops.length;
  let calls = 0;
  let measuring = false;
  const latencies = [[], [], [], []];
  const codes = {};
  const maxLag = { ms: 0 };

  function frame(body) {
    const framed = Buffer.allocUnsafe(5 + body.length);
    framed.writeUInt8(0, 0);
    framed.writeUInt32BE(body.length, 1);
    body.copy(framed, 5);
    return framed;
  }
  // One header object per path, made once: nothing is copied per call.
  const headerSets = new Map();
  function headersFor(path) {
    let set = headerSets.get(path);
    if (!set) {
      set = { ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers' };
      if (args.key) set.authorization = `Bearer ${args.key}`;
      headerSets.set(path, set);
    }
    return set;
  }

  // --client http2: gRPC's wire format straight on Node's HTTP/2 (no grpc-js call stack).
  // FRAMED is the length-prefixed message.
  function callHttp2(session, path, framed) {
    return new Promise((resolve) => {
      const stream = session.request(headersFor(path));
      let chunks = null;
      let code = null;
      stream.once('response', (h) => { if (h['grpc-status'] !== undefined) code = Number(h['grpc-status']); });
      stream.once('trailers', (t) => { code = Number(t['grpc-status']); });
      stream.on('data', (chunk) => { chunks = chunks === null ? chunk : Buffer.concat([chunks, chunk]); });
      stream.once('error', () => { code = UNAVAILABLE; });
      stream.once('close', () => {
        if (measuring) calls++;
        if (code !== 0) resolve({ code: code === null ? UNKNOWN : code });
        else resolve({ code, response: chunks === null ? Buffer.alloc(0) : chunks.subarray(5) });
      });
      stream.end(framed);
    });
  }

  function call(client, path, body, framed) {
    if (args.client === 'http2') return callHttp2(client, path, framed || frame(body));
    return new Promise((resolve) => {
      client.makeUnaryRequest(path, identity, identity, body, metadata, {}, (error, response) => {
        if (measuring) calls++;
        resolve(error ? { code: error.code } : { code: 0, response });
      });
    });
  }

  async function operation(client, op, startedNs) {
    let body = op.body;
    let framed = op.framed;
    if (op.kind === 3 && op.keyOffset) {
      // A fresh idempotency key (32 hex characters) in place of the placeholder.
      framed = Buffer.from(op.framed);
      framed.write(crypto.randomBytes(16).toString('hex'), 5 + op.keyOffset, 32, 'latin1');
      body = framed.subarray(5);
    }
    let result = await call(client, args.baseline ? EMPTY : PATHS[op.kind], body, framed);
    if (op.kind === 3 && result.code === 0) {
      const id = args.baseline ? Buffer.alloc(26, 0x41) : reservationId(result.response);
      if (id) result = await call(client, args.baseline ? EMPTY : RELEASE, releaseBody(id));
    }
    if (measuring) {
      latencies[op.kind].push(Number(process.hrtime.bigint() - startedNs) / 1e6);
      const name = STATUS_NAMES[result.code] || String(result.code);
      codes[name] = (codes[name] || 0) + 1;
    }
  }

  function take() {
    const op = ops[next];
    next = (next + 1) % ops.length;
    return op;
  }

  const rng = mulberry32(args.seed);
  let stopAt = 0;
  const inFlight = new Set();

  async function closedWorker(i) {
    const client = clients[i % clients.length];
    while (process.hrtime.bigint() < stopAt) {
      await operation(client, take(), process.hrtime.bigint());
    }
  }

  function openLoop(durationNs) {
    // Poisson arrivals: each arrival's time is drawn ahead; a timer fires every ms or so and
    // sends every arrival that is due.
    return new Promise((resolve) => {
      const start = process.hrtime.bigint();
      const end = start + durationNs;
      let due = start;
      let sent = 0;
      const gap = () => BigInt(Math.round((-Math.log(1 - rng()) / args.rate) * 1e9));
      due += gap();
      const tick = () => {
        const now = process.hrtime.bigint();
        while (due <= now && due < end) {
          const lag = Number(now - due) / 1e6;
          if (measuring && lag > maxLag.ms) maxLag.ms = lag;
          const p = operation(clients[sent++ % clients.length], take(), now);
          inFlight.add(p);
          p.then(() => inFlight.delete(p));
          due += gap();
        }
        if (now >= end) resolve();
        else setTimeout(tick, 0);
      };
      tick();
    });
  }

  async function run(seconds) {
    const durationNs = BigInt(Math.round(seconds * 1e9));
    if (args.rate > 0) {
      await openLoop(durationNs);
    } else {
      stopAt = process.hrtime.bigint() + durationNs;
      await Promise.all(Array.from({ length: args.concurrency }, (_, i) => closedWorker(i)));
    }
  }

  if (args.warmup > 0) await run(args.warmup);
  await Promise.all([...inFlight]);
  measuring = true;
  const cpu = process.cpuUsage();
  const wall = process.hrtime.bigint();
  await run(args.duration);
  const elapsed = Number(process.hrtime.bigint() - wall) / 1e9;
  const used = process.cpuUsage(cpu);
  measuring = false;
  await Promise.all([...inFlight]);
  const all = [].concat(...latencies).sort((a, b) => a - b);
  const kinds = {};
  latencies.forEach((list, kind) => {
    if (list.length === 0) return;
    list.sort((a, b) => a - b);
    kinds[NAMES[kind]] = { count: list.length, p50_ms: percentile(list, 50), p99_ms: percentile(list, 99) };
  });
  const result = {
    elapsed_s: elapsed,
    calls_per_s: calls / elapsed,
    ops_per_s: all.length / elapsed,
    p50_ms: percentile(all, 50),
    p90_ms: percentile(all, 90),
    p99_ms: percentile(all, 99),
    kinds,
    codes,
    cpu: (used.user + used.system) / 1e6 / elapsed,
    max_send_lag_ms: maxLag.ms,
    next,
  };
  process.stdout.write(JSON.stringify(result) + '\n');
  clients.forEach((c) => c.close());
}

function mulberry32(seed) {
  return function () {
    seed |= 0; seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

main().catch((error) => { console.error(error); process.exit(1); });
