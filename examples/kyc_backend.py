#!/usr/bin/env python3
"""A KYC backend on Arbiter's identity verification flow.

A verification session gets an ID document photo and a selfie, then the liveness result from
the backend's liveness provider. Arbiter decides the session once it holds all three and sends
the decision as a signed `kyc.decision` webhook: `approve`, `step_up_verification` (ask for more
proof) or `reject`. The backend verifies each delivery's Standard Webhooks signature with its
endpoint's secret (a bad one is refused with 401 and reported) and acts on the verified decision
only, never on an API answer alone.

    python3 examples/kyc_backend.py --arbiter http://127.0.0.1:8080 --key arb_... \\
        --id-document tests/fixtures/camera/DSCN0010.jpg --selfie samples/sd-generated-duck.png

Exits 0 once the session's decision has arrived, 1 after --timeout seconds.
"""
import argparse
import base64
import os
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from standardwebhooks.webhooks import Webhook

from arbiter_client import call, verified

REPO = Path(__file__).resolve().parent.parent
# What the backend does with the user for each of the KYC policy's actions.
OUTCOME = {"approve": "account opened", "step_up_verification": "video call booked",
           "reject": "application refused, sent to compliance"}


class Decisions:
    """The verified `kyc.decision` bodies received, by session id."""

    def __init__(self):
        self.webhook = None  # verifies deliveries once the endpoint is registered
        self.lock = threading.Condition()
        self.by_session = {}

    def add(self, event):
        with self.lock:
            self.by_session[event["session_id"]] = event
            self.lock.notify_all()


def receiver(decisions, port):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
            headers = {k.lower(): v for k, v in self.headers.items()}
            event = decisions.webhook and verified(decisions.webhook, headers, body)
            self.send_response(204 if event else 401 if decisions.webhook else 503)
            self.end_headers()
            if event and event["type"] == "kyc.decision":
                decisions.add(event)

        def log_message(self, *_):  # quiet: the backend prints what it does
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--id-document", default=REPO / "tests/fixtures/camera/DSCN0010.jpg")
    parser.add_argument("--selfie", default=REPO / "samples/sd-generated-duck.png")
    parser.add_argument("--arbiter", default="http://127.0.0.1:8080")
    parser.add_argument("--key", default=os.environ.get("ARBITER_API_KEY"))
    parser.add_argument("--port", type=int, default=0, help="receiver port on 127.0.0.1 (0: any)")
    parser.add_argument("--session", default=f"kyc-{uuid.uuid4().hex[:8]}")
    parser.add_argument("--timeout", type=float, default=60)
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # each line shows as it happens
    if not args.key:
        sys.exit("give --key or set ARBITER_API_KEY")

    decisions = Decisions()
    server = receiver(decisions, args.port)
    url = f"http://127.0.0.1:{server.server_port}/arbiter"
    endpoint = call(args, "POST", "/v1/webhooks/endpoints",
                    {"url": url, "events": ["kyc.decision"]})
    decisions.webhook = Webhook(endpoint["secret"])  # shown once: a real backend stores it
    print(f"registered {endpoint['endpoint_id']} -> {url}")
    session_path = f"/v1/flows/kyc/sessions/{args.session}"
    try:
        for role, path in [("id_document", args.id_document), ("selfie", args.selfie)]:
            reply = call(args, "POST", f"{session_path}/images", {
                "image_base64": base64.b64encode(Path(path).read_bytes()).decode(),
                "role": role})
            verdict, decision = reply["verdict"], reply["decision"]
            print(f"{role} ({Path(path).name}): {verdict['label']} {verdict['risk_level']}"
                  f" -> {decision['action']} ({decision['reason']})")

        session = call(args, "GET", session_path)
        print(f"session {args.session}: {session['status']}, missing {session['missing']}")
        call(args, "POST", f"{session_path}/liveness",
             {"passed": True, "score": 0.97, "provider": "acme-liveness"})
        print("liveness sent: passed, score 0.97")

        with decisions.lock:
            if not decisions.lock.wait_for(lambda: args.session in decisions.by_session,
                                           args.timeout):
                print(f"TIMEOUT: no kyc.decision for {args.session}")
                return 1
            event = decisions.by_session[args.session]
        decision = event["decision"]
        print(f"kyc.decision (verified) for {event['session_id']}: session "
              f"{event['session']['status']}, {decision['action']} ({decision['reason']}: "
              f"{decision.get('description')})")
        print(f"outcome: {OUTCOME[decision['action']]}")
        return 0
    finally:
        call(args, "DELETE", f"/v1/webhooks/endpoints/{endpoint['endpoint_id']}")
        server.shutdown()


if __name__ == "__main__":
    sys.exit(main())
