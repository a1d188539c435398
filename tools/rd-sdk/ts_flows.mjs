// Reality Defender's TypeScript SDK (npm @realitydefender/realitydefender 0.1.17), its README's
// flows unchanged, against a base URL given on the command line. Prints one JSON line per flow;
// tests/it/rd_sdks.rs checks them.
//
//   node ts_flows.mjs BASE_URL API_KEY OTHER_TENANT_KEY IMAGE OTHER_IMAGE TOO_LARGE_FILE
import { RealityDefender } from '@realitydefender/realitydefender';

const [baseUrl, apiKey, otherKey, image, otherImage, tooLarge] = process.argv.slice(2);
const rd = new RealityDefender({ apiKey, baseUrl });
const fast = { pollingInterval: 200, maxAttempts: 150 };
const print = (flow, fields) => console.log(JSON.stringify({ flow, ...fields }));
const outcome = (flow, expected, result) =>
  print(flow, { expected, requestId: result.requestId, status: result.status, score: result.score, models: result.models });
const failure = async (flow, action) => {
  try {
    await action();
    print(flow, { code: null });
  } catch (error) {
    print(flow, { code: error.code ?? null, message: String(error.message ?? error) });
  }
};

// detect: upload and poll in one call.
const detected = await rd.detect({ filePath: image }, fast);
outcome('detect', detected.requestId, detected);

// upload, then getResult.
const uploaded = await rd.upload({ filePath: otherImage });
outcome('upload+getResult', uploaded.requestId, await rd.getResult(uploaded.requestId, fast));

// The event style: pollForResults emits `result` (or `error`).
const polledUpload = await rd.upload({ filePath: image });
const polled = await new Promise((resolve, reject) => {
  rd.on('result', resolve);
  rd.on('error', reject);
  rd.pollForResults(polledUpload.requestId, { pollingInterval: 200, timeout: 60000 });
});
outcome('pollForResults', polledUpload.requestId, polled);

// getResults: a page of this tenant's uploads.
const page = await rd.getResults(0, 2);
print('getResults', {
  totalItems: page.totalItems,
  totalPages: page.totalPages,
  currentPage: page.currentPage,
  currentPageItemsCount: page.currentPageItemsCount,
  items: page.items.map((item) => ({ requestId: item.requestId, status: item.status, score: item.score })),
});

// Refusals, through the SDK itself.
await failure('bad key', () => new RealityDefender({ apiKey: 'arb_nope_nope', baseUrl }).upload({ filePath: image }));
await failure('foreign requestId', () =>
  new RealityDefender({ apiKey: otherKey, baseUrl }).getResult(uploaded.requestId, fast));
await failure('too large', () => rd.upload({ filePath: tooLarge }));
