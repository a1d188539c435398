#!/usr/bin/env python3
"""An insurer's claims system on Arbiter's insurance flow.

It starts a webhook receiver, registers it with Arbiter, attaches photos to a claim and acts on
the signed events that come back: `claim.siu_escalation` flags the claim for the Special
Investigations Unit (SIU), `claim.review_warning` warns the adjuster, `review.resolved` records
a reviewer's finding. A delivery whose Standard Webhooks signature does not verify with the
endpoint's secret is refused (401) and reported.

    python3 examples/claims_system.py --arbiter http://127.0.0.1:8080 --key arb_... \\
        samples/sd-generated-duck.png tests/fixtures/camera/DSCN0010.jpg

Exits 0 once each photo's event has come (with --await-review, also the `review.resolved` of
each escalated photo), 1 after --timeout seconds.
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
EVENTS = ["claim.siu_escalation", "claim.review_warning", "review.resolved"]
# The events of the insurance policy's actions (`proceed` announces none).
EVENT_OF = {"siu_escalation": "claim.siu_escalation", "adjuster_review": "claim.review_warning"}


class ClaimsSystem:
    """The claims system's own state: SIU flags, and the events received so far."""

    def __init__(self):
        self.webhook = None  # verifies deliveries once the endpoint is registered
        self.lock = threading.Condition()
        self.siu_flags = {}  # claim id -> reason
        self.received = set()  # (event, request id)
        self.seen = set()  # webhook ids: a delivery may come more than once

    def handle(self, delivery_id, event):
        with self.lock:
            if delivery_id in self.seen:
                return
            self.seen.add(delivery_id)
            kind, decision = event["type"], event.get("decision", {})
            if kind == "claim.siu_escalation":
                claim_id = event["claim"]["case_id"]
                self.siu_flags[claim_id] = decision["reason"]
                print(f"SIU: claim {claim_id} flagged for investigation, photo "
                      f"{event['reference_id']}: {decision['reason']} ({decision['description']})")
            elif kind == "claim.review_warning":
                print(f"ADJUSTER: claim {event['claim']['case_id']}, photo {event['reference_id']}"
                      f": {decision['reason']} ({decision['description']})")
            elif kind == "review.resolved":
                item = event["item"]
                print(f"REVIEWED: claim {item['case_id']}, photo {item['reference_id']}: "
                      f"{item['label']}, action {item['resolved_action']} by {item['resolved_by']}")
            self.received.add((kind, event.get("request_id") or event["item"]["request_id"]))
            self.lock.notify_all()


def receiver(system, port):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
            headers = {k.lower(): v for k, v in self.headers.items()}
            event = system.webhook and verified(system.webhook, headers, body)
            self.send_response(204 if event else 401 if system.webhook else 503)
            self.end_headers()
            if event:
                system.handle(headers["webhook-id"], event)

        def log_message(self, *_):  # quiet: the claims system prints what it does
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photos", nargs="*", default=[REPO / "samples/sd-generated-duck.png",
                                                      REPO / "tests/fixtures/camera/DSCN0010.jpg"])
    parser.add_argument("--arbiter", default="http://127.0.0.1:8080")
    parser.add_argument("--key", default=os.environ.get("ARBITER_API_KEY"))
    parser.add_argument("--port", type=int, default=0, help="receiver port on 127.0.0.1 (0: any)")
    parser.add_argument("--claim", default=f"CLM-{uuid.uuid4().hex[:8]}")
    parser.add_argument("--await-review", action="store_true",
                        help="also wait for the review.resolved of each escalated photo")
    parser.add_argument("--timeout", type=float, default=60)
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # each line shows as it happens
    if not args.key:
        sys.exit("give --key or set ARBITER_API_KEY")

    system = ClaimsSystem()
    server = receiver(system, args.port)
    url = f"http://127.0.0.1:{server.server_port}/arbiter"
    endpoint = call(args, "POST", "/v1/webhooks/endpoints", {"url": url, "events": EVENTS})
    system.webhook = Webhook(endpoint["secret"])  # shown once: a real system stores it
    print(f"registered {endpoint['endpoint_id']} -> {url}")
    try:
        expected = set()
        for n, path in enumerate(args.photos, 1):
            reply = call(args, "POST", f"/v1/flows/insurance/claims/{args.claim}/photos", {
                "image_base64": base64.b64encode(Path(path).read_bytes()).decode(),
                "claim": {"amount": 12000, "currency": "EUR", "line_of_business": "auto",
                          "incident_date": "2026-03-10"},
                "photo": {"role": "damage"}})
            verdict, action = reply["verdict"], reply["decision"]["action"]
            print(f"photo {n} ({Path(path).name}): {verdict['label']} {verdict['risk_level']}"
                  f" -> {action}")
            if action in EVENT_OF:
                expected.add((EVENT_OF[action], reply["request_id"]))
            if action == "siu_escalation" and args.await_review:
                expected.add(("review.resolved", reply["request_id"]))
        print("awaiting SIU review" if args.await_review else "awaiting events")
        deadline = time.monotonic() + args.timeout
        with system.lock:
            while not expected <= system.received:
                if not system.lock.wait(deadline - time.monotonic()):
                    print(f"TIMEOUT: still waiting for {sorted(expected - system.received)}")
                    return 1
        claim = call(args, "GET", f"/v1/flows/insurance/claims/{args.claim}")
        print(f"claim {args.claim}: {claim['status']}, {len(claim['images'])} photos, decision "
              f"{claim['decision']['action']} ({claim['decision']['reason']}), "
              f"SIU flag: {system.siu_flags.get(args.claim, 'none')}")
        return 0
    finally:
        call(args, "DELETE", f"/v1/webhooks/endpoints/{endpoint['endpoint_id']}")
        server.shutdown()


if __name__ == "__main__":
    sys.exit(main())
