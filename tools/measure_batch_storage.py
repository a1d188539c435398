#!/usr/bin/env python3
"""Measures how batch images are stored on PostgreSQL: 10 batches of 100 PNGs through one
`arbiter serve`, the jobs and job_images tables' sizes (with their TOAST and indexes) once queued,
once analysed, and after VACUUM, against the images' own size.

usage: measure_batch_storage.py ARBITER_BINARY POSTGRES_URL DATA_DIR
The database named in POSTGRES_URL is dropped and created afresh.
"""
import base64, json, os, subprocess, sys, time, urllib.request, zlib, struct

binary, url, data_dir = sys.argv[1:4]
admin = url.rsplit("/", 1)[0] + "/postgres"
name = url.rsplit("/", 1)[1]
subprocess.run(["psql", admin, "-qc", f"DROP DATABASE IF EXISTS {name}"], check=True)
subprocess.run(["psql", admin, "-qc", f"CREATE DATABASE {name}"], check=True)
env = dict(os.environ, ARBITER_DATABASE_URL=url, ARBITER_DATA_DIR=data_dir, RUST_LOG="warn",
           ARBITER_JOBS_POLL_INTERVAL_MS="100")
key = json.loads(subprocess.run([binary, "keys", "create", "--tenant", "acme", "--name", "m",
                                 "--plan", "enterprise", "--json"], env=env, check=True,
                                capture_output=True, text=True).stdout)["key"]

def png(n):
    """A 256x256 RGB PNG of its own bytes (noise seeded by n)."""
    w = h = 256
    rows = bytearray()
    seed = n * 2654435761 & 0xffffffff
    for y in range(h):
        rows.append(0)
        for x in range(w):
            seed = (seed * 1103515245 + 12345) & 0xffffffff
            rows += bytes(((seed >> 8) & 255, (seed >> 16) & 255, (x + y + n) & 255))
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(bytes(rows), 6)) + chunk(b"IEND", b""))

def sizes():
    q = ("SELECT pg_total_relation_size('jobs'), pg_total_relation_size('job_images'), "
         "(SELECT count(*) FROM job_images), (SELECT count(*) FROM jobs WHERE status='queued')")
    out = subprocess.run(["psql", url, "-tAc", q], check=True, capture_output=True, text=True).stdout
    return [int(v) for v in out.strip().split("|")]

server = subprocess.Popen([binary, "serve", "--listen", "127.0.0.1:18787"], env=env,
                          stderr=subprocess.DEVNULL)
try:
    for _ in range(100):
        try:
            urllib.request.urlopen("http://127.0.0.1:18787/healthz"); break
        except Exception:
            time.sleep(0.1)
    image_bytes = 0
    for b in range(10):
        images = []
        for i in range(100):
            data = png(b * 100 + i)
            image_bytes += len(data)
            images.append({"image_base64": base64.b64encode(data).decode(), "reference_id": f"b{b}-{i}"})
        req = urllib.request.Request("http://127.0.0.1:18787/v1/analyze/batch",
                                     data=json.dumps({"images": images}).encode(),
                                     headers={"Authorization": f"Bearer {key}",
                                              "Content-Type": "application/json"})
        urllib.request.urlopen(req).read()
    queued = sizes()
    start = time.time()
    while sizes()[3] > 0:
        time.sleep(1)
    analysed = sizes()
    elapsed = time.time() - start
    subprocess.run(["psql", url, "-qc", "VACUUM jobs, job_images"], check=True)
    vacuumed = sizes()
    subprocess.run(["psql", url, "-qc", "VACUUM FULL jobs, job_images"], check=True)
    full = sizes()
finally:
    server.terminate(); server.wait()
mib = lambda n: f"{n / 1048576:.2f} MiB"
print(f"images: 1000 PNGs, {mib(image_bytes)} in all")
for label, (jobs, imgs, rows, q) in [("queued", queued), ("analysed", analysed),
                                     ("after VACUUM", vacuumed), ("after VACUUM FULL", full)]:
    print(f"{label:>18}: jobs {mib(jobs)}, job_images {mib(imgs)} ({rows} rows, {q} queued)")
print(f"analysed 1000 images in {elapsed:.1f} s")
