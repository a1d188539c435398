#!/usr/bin/env python3
"""A platform's moderation service on Arbiter's UGC flow.

Every new upload goes to Arbiter, which answers 202 at once: uploads are analysed in batches and
each decision comes later as a signed `content.decision` webhook. The service verifies each
delivery's Standard Webhooks signature with its endpoint's secret (a bad one is refused with 401
and reported) and applies the decision to its own content table: `publish` makes the upload
visible, `hold_for_review` keeps it hidden until a moderator decides (Arbiter queues it in the
`moderation` review queue), `auto_reject` removes it.

    python3 examples/moderation_service.py --arbiter http://127.0.0.1:8080 --key arb_... \\
        samples/sd-generated-duck.png samples/c2pa-altered-after-signing.jpg \\
        samples/plain-render.png

Exits 0 once every upload has its decision, 1 after --timeout seconds.
"""
import argparse
import base64
import os
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from standardwebhooks.webhooks import Webhook

from arbiter_client import call, verified

REPO = Path(__file__).resolve().parent.parent
# What each of the UGC policy's actions does to an upload in the content table.
STATE_OF = {"publish": "published", "hold_for_review": "held", "auto_reject": "rejected"}


class ContentTable:
    """The platform's uploads: id -> {"file", "state"}; "pending" until Arbiter decides."""

    def __init__(self):
        self.webhook = None  # verifies deliveries once the endpoint is registered
        self.lock = threading.Condition()
        self.rows = {}

    def apply(self, event):
        upload_id = event["reference_id"]
        with self.lock:
            row = self.rows.get(upload_id)
            if row is None or row["state"] != "pending":
                return  # not ours, or a repeated delivery
            if event["type"] == "analysis.failed":  # not an image, too small, ...
                row["state"] = "failed"
                print(f"{upload_id} ({row['file']}): {event['error']['code']}: now failed")
            else:
                decision = event["decision"]
                row["state"] = STATE_OF[decision["action"]]
                print(f"{upload_id} ({row['file']}): {event['verdict']['label']} -> "
                      f"{decision['action']} ({decision['reason']}): now {row['state']}")
            self.lock.notify_all()

    def pending(self):
        return [id for id, row in self.rows.items() if row["state"] == "pending"]


def receiver(table, port):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
            headers = {k.lower(): v for k, v in self.headers.items()}
            event = table.webhook and verified(table.webhook, headers, body)
            self.send_response(204 if event else 401 if table.webhook else 503)
            self.end_headers()
            if event and event["type"] in ("content.decision", "analysis.failed"):
                table.apply(event)

        def log_message(self, *_):  # quiet: the service prints what it does
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("uploads", nargs="*", default=[
        REPO / "samples/sd-generated-duck.png", REPO / "samples/c2pa-altered-after-signing.jpg",
        REPO / "samples/plain-render.png"])
    parser.add_argument("--arbiter", default="http://127.0.0.1:8080")
    parser.add_argument("--key", default=os.environ.get("ARBITER_API_KEY"))
    parser.add_argument("--port", type=int, default=0, help="receiver port on 127.0.0.1 (0: any)")
    parser.add_argument("--account-age-days", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=60)
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # each line shows as it happens
    if not args.key:
        sys.exit("give --key or set ARBITER_API_KEY")

    table = ContentTable()
    server = receiver(table, args.port)
    url = f"http://127.0.0.1:{server.server_port}/arbiter"
    endpoint = call(args, "POST", "/v1/webhooks/endpoints",
                    {"url": url, "events": ["content.decision", "analysis.failed"]})
    table.webhook = Webhook(endpoint["secret"])  # shown once: a real service stores it
    print(f"registered {endpoint['endpoint_id']} -> {url}")
    try:
        for path in args.uploads:
            upload_id = f"up-{uuid.uuid4().hex[:10]}"
            with table.lock:
                table.rows[upload_id] = {"file": Path(path).name, "state": "pending"}
            accepted = call(args, "POST", "/v1/flows/ugc/uploads", {
                "image_base64": base64.b64encode(Path(path).read_bytes()).decode(),
                "upload": {"id": upload_id, "visibility": "public"},
                "uploader": {"id": "user-42", "account_age_days": args.account_age_days,
                             "prior_strikes": 0}})
            print(f"{upload_id} ({Path(path).name}): {accepted['status']}, decision to come")
        deadline = time.monotonic() + args.timeout
        with table.lock:
            while table.pending():
                if not table.lock.wait(deadline - time.monotonic()):
                    print(f"TIMEOUT: no decision yet for {table.pending()}")
                    return 1
        queue = call(args, "GET", "/v1/review/items?queue=moderation&status=open")["data"]
        mine = [item for item in queue if item["reference_id"] in table.rows]
        print(f"moderation queue: {len(queue)} open, {len(mine)} of ours")
        for item in mine:
            print(f"  {item['item_id']}: {item['reference_id']} {item['reason']}")
        states = [row["state"] for row in table.rows.values()]
        print("content table: " + ", ".join(f"{states.count(s)} {s}" for s in STATE_OF.values()))
        return 0
    finally:
        call(args, "DELETE", f"/v1/webhooks/endpoints/{endpoint['endpoint_id']}")
        server.shutdown()


if __name__ == "__main__":
    sys.exit(main())
