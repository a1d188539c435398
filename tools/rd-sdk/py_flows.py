"""Reality Defender's Python SDK (PyPI realitydefender 0.1.13), its README's flows unchanged,
against a base URL given on the command line. Prints one JSON line per flow; tests/it/rd_sdks.rs
checks them.

    python3 py_flows.py BASE_URL API_KEY OTHER_TENANT_KEY IMAGE OTHER_IMAGE TOO_LARGE_FILE
"""

import asyncio
import json
import sys

from realitydefender import RealityDefender, RealityDefenderError

base_url, api_key, other_key, image, other_image, too_large = sys.argv[1:7]


def emit(flow, **fields):
    print(json.dumps({"flow": flow, **fields}), flush=True)


def outcome(flow, expected, result):
    emit(flow, expected=expected, requestId=result["request_id"], status=result["status"],
         score=result["score"], models=result["models"])


async def failure(flow, action):
    try:
        await action()
        emit(flow, code=None)
    except RealityDefenderError as error:
        emit(flow, code=error.code, message=str(error))


async def main():
    rd = RealityDefender(api_key=api_key, base_url=base_url)

    # upload, then get_result.
    uploaded = await rd.upload(file_path=image)
    result = await rd.get_result(uploaded["request_id"], max_attempts=60, polling_interval=200)
    outcome("upload+get_result", uploaded["request_id"], result)

    # The event style: poll_for_results emits "result" (or "error").
    polled_upload = await rd.upload(file_path=other_image)
    events = []
    rd.on("result", lambda r: events.append(("result", r)))
    rd.on("error", lambda e: events.append(("error", e)))
    await rd.poll_for_results(polled_upload["request_id"], polling_interval=200, timeout=60000)
    kind, value = events[0]
    if kind == "result":
        outcome("poll_for_results", polled_upload["request_id"], value)
    else:
        emit("poll_for_results", code=value.code, message=str(value))

    # get_results: a page of this tenant's uploads.
    page = await rd.get_results(page_number=0, size=2)
    emit("get_results", totalItems=page["total_items"], totalPages=page["total_pages"],
         currentPage=page["current_page"], currentPageItemsCount=page["current_page_items_count"],
         items=[{"requestId": i["request_id"], "status": i["status"], "score": i["score"]}
                for i in page["items"]])

    # Feedback: a reviewer's label on the first result.
    feedback = await rd.create_user_feedback(uploaded["request_id"], "SYNTHETIC", "CONFIRMATION",
                                             comment="checked by hand")
    emit("create_user_feedback", requestId=feedback["requestId"], label=feedback["label"],
         id=feedback["id"])

    # Refusals, through the SDK itself.
    await failure("bad key", lambda: RealityDefender(api_key="arb_nope_nope", base_url=base_url)
                  .upload(file_path=image))
    await failure("foreign requestId", lambda: RealityDefender(api_key=other_key, base_url=base_url)
                  .get_result(uploaded["request_id"], max_attempts=2, polling_interval=100))
    await failure("too large", lambda: rd.upload(file_path=too_large))
    await failure("social", lambda: rd.upload_social_media("https://www.youtube.com/watch?v=x"))
    await rd.cleanup()


asyncio.run(main())

# detect_file: the synchronous one-shot, in a fresh client outside the event loop.
client = RealityDefender(api_key=api_key, base_url=base_url)
detected = client.detect_file(image)
outcome("detect_file", detected["request_id"], detected)
