#!/usr/bin/env python3
"""bench/sync_load.py: load driver for bench/sync.sh (the sync service).

Pushes the same kind of batches two ways, each client from its own thread:
  libpq  fleet.sync_push($client, $batch) over one libpq connection per
         client (libpq through ctypes; the tenant set once per session)
  http   POST /v1/sync/push with the client's bearer token (keep-alive)
and measures mutations per second (after WARM untimed batches per client);
then, over HTTP, request latency at a
fixed request rate (open loop: each request is timed from the moment it
was due, so a slow answer also delays the ones behind it).

  sync_load.py throughput MODE CLIENTS_FILE PAGES BATCH     -> prints mutations/s
  sync_load.py latency CLIENTS_FILE RATE SECONDS BATCH      -> prints p50 p99 (ms) sent
CLIENTS_FILE lines: client_uuid token stop_id,stop_id,...  (env PGDSN, SYNC_URL)
"""
import ctypes
import http.client
import json
import os
import sys
import threading
import time
import urllib.parse

# hybrid logical clocks from the time the load starts: a route adjustment's
# clock must lie within fleet.future_margin of the server's clock, or it is
# rejected (invalid_hlc) before it is applied; i ms ahead stays well inside
BASE_MS = int(time.time() * 1000)


def batches(client_line, pages, batch, start_id=1):
    """The client's pages: route adjustments (lww_hlc) and every 5th a proof of delivery."""
    _, _, stops = client_line
    out = []
    i = start_id
    for _ in range(pages):
        ms = []
        for _ in range(batch):
            stop = stops[i % len(stops)]
            if i % 5 == 0:
                ms.append({"id": i, "workflow": "proof_of_delivery",
                           "args": {"stop_id": stop, "kind": "note", "metadata": {"n": i}}})
            else:
                ms.append({"id": i, "workflow": "stop_adjust", "hlc": "%d:0" % (BASE_MS + i),
                           "args": {"stop_id": stop, "fields": {"address": "Adjusted %d" % i}}})
            i += 1
        out.append(json.dumps(ms, separators=(",", ":")))
    return out


def read_clients(path):
    res = []
    with open(path) as f:
        for line in f:
            c, tok, stops = line.split()
            res.append((c, tok, [int(s) for s in stops.split(",")]))
    return res


class Libpq:
    def __init__(self):
        self.lib = ctypes.CDLL("libpq.so.5")
        self.lib.PQconnectdb.restype = ctypes.c_void_p
        self.lib.PQconnectdb.argtypes = [ctypes.c_char_p]
        self.lib.PQstatus.argtypes = [ctypes.c_void_p]
        self.lib.PQexecParams.restype = ctypes.c_void_p
        self.lib.PQexecParams.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_void_p,
                                          ctypes.POINTER(ctypes.c_char_p), ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int]
        self.lib.PQresultStatus.argtypes = [ctypes.c_void_p]
        self.lib.PQntuples.argtypes = [ctypes.c_void_p]
        self.lib.PQgetvalue.restype = ctypes.c_char_p
        self.lib.PQgetvalue.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
        self.lib.PQclear.argtypes = [ctypes.c_void_p]
        self.lib.PQerrorMessage.restype = ctypes.c_char_p
        self.lib.PQerrorMessage.argtypes = [ctypes.c_void_p]
        self.lib.PQresultErrorMessage.restype = ctypes.c_char_p
        self.lib.PQresultErrorMessage.argtypes = [ctypes.c_void_p]

    def connect(self, dsn):
        c = self.lib.PQconnectdb(dsn.encode())
        if self.lib.PQstatus(c) != 0:
            raise SystemExit("connect: %s" % self.lib.PQerrorMessage(c).decode())
        return c

    def query(self, conn, sql, params, col=0):
        arr = (ctypes.c_char_p * len(params))(*[p.encode() for p in params])
        r = self.lib.PQexecParams(conn, sql.encode(), len(params), None, arr, None, None, 0)
        st = self.lib.PQresultStatus(r)
        if st not in (1, 2):
            msg = self.lib.PQresultErrorMessage(r).decode()
            self.lib.PQclear(r)
            raise SystemExit("query failed: %s" % msg)
        # read every row, as the service does
        rows = [self.lib.PQgetvalue(r, i, col) for i in range(self.lib.PQntuples(r))]
        self.lib.PQclear(r)
        return rows


WARM = 2   # batches per client pushed before the clock starts (plan caches, connections)


def throughput(mode, clients, pages, batch):
    work = [batches(c, pages + WARM, batch) for c in clients]
    errors = []
    barrier = threading.Barrier(len(clients) + 1)
    url = urllib.parse.urlparse(os.environ.get("SYNC_URL", "http://127.0.0.1:8088"))

    def run_libpq(k):
        pq = Libpq()
        conn = pq.connect(os.environ["PGDSN"])
        pq.query(conn, "SELECT fleet.set_tenant($1::bigint)", [clients[k][1].split(".")[1]])
        for n, b in enumerate(work[k]):
            if n == WARM:
                barrier.wait()
            rows = pq.query(conn, "SELECT mutation_id, result, stored::text FROM fleet.sync_push($1::uuid, $2::jsonb)",
                            [clients[k][0], b], col=2)
            if len(rows) != batch:
                errors.append("short answer")

    def run_http(k):
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=300)
        hdr = {"Authorization": "Bearer " + clients[k][1], "Content-Type": "application/json"}
        for n, b in enumerate(work[k]):
            if n == WARM:
                barrier.wait()
            conn.request("POST", "/v1/sync/push", body='{"mutations":' + b + '}', headers=hdr)
            r = conn.getresponse()
            body = r.read()
            if r.status != 200 or len(json.loads(body)["results"]) != batch:
                errors.append("%d %s" % (r.status, body[:200]))

    threads = [threading.Thread(target=run_libpq if mode == "libpq" else run_http, args=(k,)) for k in range(len(clients))]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.monotonic()
    for t in threads:
        t.join()
    dt = time.monotonic() - t0
    if errors:
        raise SystemExit("errors: %s" % errors[:3])
    print("%.1f" % (len(clients) * pages * batch / dt))


def latency(clients, rate, seconds, batch):
    """Open loop at `rate` requests/s over all clients (each client its share)."""
    url = urllib.parse.urlparse(os.environ.get("SYNC_URL", "http://127.0.0.1:8088"))
    per = rate / len(clients)
    n = max(1, int(per * seconds))
    work = [batches(c, n, batch) for c in clients]
    lat = []
    errors = []
    lock = threading.Lock()
    start = time.monotonic() + 0.5

    def run(k):
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=300)
        hdr = {"Authorization": "Bearer " + clients[k][1], "Content-Type": "application/json"}
        for j, b in enumerate(work[k]):
            due = start + (j + k / len(clients)) / per
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
            conn.request("POST", "/v1/sync/push", body='{"mutations":' + b + '}', headers=hdr)
            r = conn.getresponse()
            r.read()
            done = time.monotonic()
            with lock:
                if r.status != 200:
                    errors.append(r.status)
                lat.append(done - due)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(len(clients))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise SystemExit("errors: %s" % errors[:3])
    lat.sort()
    p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000
    print("%.1f %.1f %d" % (p(0.50), p(0.99), len(lat)))


if __name__ == "__main__":
    if sys.argv[1] == "throughput":
        throughput(sys.argv[2], read_clients(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
    else:
        latency(read_clients(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]))
