#!/usr/bin/env python3
"""Verify one Arbiter webhook delivery the way a customer would.

Reads a JSON object on stdin: {"secret": "whsec_...", "headers": {name: value}, "body": "<exact
body text>"} and checks
  - the Standard Webhooks signature with the `standardwebhooks` package from PyPI
    (python3 -m pip install standardwebhooks), and
  - the integration guide's X-CheckReal-Signature: hex HMAC-SHA256 of the body, keyed with the
    secret's text, compared in constant time.
Exits 0 and prints OK when both verify; exits 1 naming what failed.
"""
import hashlib
import hmac
import json
import sys

from standardwebhooks.webhooks import Webhook


def main() -> int:
    given = json.load(sys.stdin)
    secret = given["secret"]
    headers = {k.lower(): v for k, v in given["headers"].items()}
    body = given["body"]
    try:
        Webhook(secret).verify(body, headers)
    except Exception as err:  # the package raises WebhookVerificationError
        print(f"FAIL: standard webhooks signature: {err}")
        return 1
    expected = hmac.new(secret.encode(), body.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, headers.get("x-checkreal-signature", "")):
        print("FAIL: X-CheckReal-Signature does not match")
        return 1
    print(f"OK: {headers['webhook-id']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
