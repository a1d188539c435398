"""Values for the request fields whose rules the OpenAPI document states only in words.

`tools/schemathesis.sh` holds the document to the API with the `positive_data_acceptance`
check: a request the document calls valid must be accepted. A few rules depend on the server's
surroundings or on a plugin, not on the request alone, so no schema can state them; the
operations' descriptions do. Here each generated request is made to follow them, and nothing
else is changed.
"""

import schemathesis

# A webhook destination must resolve to an address the server may reach (public ones, or
# `outbound.allow_cidrs`): the script allows the loopback address, where nothing listens.
DESTINATION = "http://127.0.0.1:9/schemathesis"


@schemathesis.hook
def map_case(context, case):
    label = case.operation.label
    body = case.body if isinstance(case.body, dict) else None
    if label == "POST /v1/webhooks/endpoints" and body is not None:
        body["url"] = DESTINATION
    if label == "POST /v1/analyze/batch" and body is not None:
        if body.get("webhook_url") is not None:
            body["webhook_url"] = DESTINATION
        # A batch's webhook URL is given at the top level, never in its options.
        options = body.get("options")
        if isinstance(options, dict):
            options.pop("webhook_url", None)
    if label == "POST /v1/analyze":
        # `facts` are checked against the schema of the flow named by `?flow=`, which the flow
        # plugin owns: the request is sent without a flow.
        if case.query:
            case.query.pop("flow", None)
        if body is not None:
            body.pop("facts", None)
            options = body.get("options")
            if isinstance(options, dict) and options.get("webhook_url") is not None:
                options["webhook_url"] = DESTINATION
    return case
