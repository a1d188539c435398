"""What the examples share: calling Arbiter's API and checking a webhook delivery's signature."""
import json
import sys
import urllib.error
import urllib.request

from standardwebhooks.webhooks import WebhookVerificationError


def call(args, method, path, body=None):
    """One Arbiter API call: its JSON answer, or exit naming the error."""
    request = urllib.request.Request(
        args.arbiter.rstrip("/") + path, method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {args.key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            text = response.read()
            return json.loads(text) if text else None
    except urllib.error.HTTPError as err:
        sys.exit(f"{method} {path}: HTTP {err.code} {err.read().decode(errors='replace')}")


def verified(webhook, headers, body):
    """The delivery's JSON body if its signature verifies, else None (reported)."""
    try:
        return webhook.verify(body, headers)
    except (WebhookVerificationError, ValueError) as err:
        print(f"REJECTED delivery {headers.get('webhook-id')}: bad signature ({err})")
        return None

