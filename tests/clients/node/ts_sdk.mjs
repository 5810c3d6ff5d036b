// The cloudflare TypeScript SDK (7.3.0, from npm) against a running Stepline server.
//
// Run by tests/clients/test_ts_sdk.py with STEPLINE_BASE_URL (…/client/v4), STEPLINE_TOKEN and
// STEPLINE_ACCOUNT set. It prints one JSON object: what the SDK returned for each call, as a
// user of the SDK would see it, and the number of HTTP requests it sent (to see retries).
import Cloudflare from 'cloudflare';

const account_id = process.env.STEPLINE_ACCOUNT;
const requests = [];
const countingFetch = (url, init) => {
  requests.push(`${init?.method ?? 'GET'} ${new URL(url).pathname}`);
  return fetch(url, init);
};
const client = new Cloudflare({
  apiToken: process.env.STEPLINE_TOKEN,
  baseURL: process.env.STEPLINE_BASE_URL,
  fetch: countingFetch,
});
const instances = client.workflows.instances;
const out = {};

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor(workflow_name, id, statuses) {
  const deadline = Date.now() + 15000;
  for (;;) {
    const detail = await instances.get(id, { account_id, workflow_name });
    if (statuses.includes(detail.status) || Date.now() > deadline) return detail;
    await sleep(100);
  }
}

async function caught(call) {
  try {
    return { ok: true, value: await call() };
  } catch (error) {
    return {
      ok: false,
      class: error.constructor.name,
      status: error.status,
      errors: error.errors,
    };
  }
}

// create with an id and params given as an object (wrangler does the same; Q3).
out.create = await instances.create('ts-quick', {
  account_id,
  instance_id: 'ts-one',
  params: { numbers: [10, 20], label: 'ts' },
});

// batch: a top-level JSON array; the result is a single page of created instances.
const bulk = await instances.bulk('ts-quick', {
  account_id,
  body: [{ instance_id: 'ts-bulk-1', params: { numbers: [5] } }, { params: { numbers: [6] } }],
});
out.bulk = bulk.result;
out.bulk_iterated = [];
for await (const created of instances.bulk('ts-quick', {
  account_id,
  body: [{ instance_id: 'ts-bulk-2' }],
})) {
  out.bulk_iterated.push(created.id);
}

// describe (get): wait for the quick instance to finish, then read it as the SDK returns it.
out.get = await waitFor('ts-quick', 'ts-one', ['complete', 'errored']);

// step output: the TS SDK encodes the space in the step name as %20 (Q4).
out.step = await instances.step('ts-one', {
  account_id,
  workflow_name: 'ts-quick',
  name: 'fetch data-1',
  type: 'step',
});

// list: for await walks page after page until one comes back empty (§5).
out.listed = [];
for await (const row of instances.list('ts-quick', { account_id, per_page: 2 })) {
  out.listed.push(row.id);
}
out.list_requests = requests.filter(
  (r) => r.startsWith('GET ') && r.endsWith('/ts-quick/instances'),
).length;

// status edit: pause and resume a sleeping instance, then terminate it.
await instances.create('ts-sleepy', { account_id, instance_id: 'ts-sleeper' });
out.sleeper_before = (await waitFor('ts-sleepy', 'ts-sleeper', ['waiting'])).status;
const target = { account_id, workflow_name: 'ts-sleepy' };
out.pause = await instances.status.edit('ts-sleeper', { ...target, status: 'pause' });
out.resume = await instances.status.edit('ts-sleeper', { ...target, status: 'resume' });
out.terminate = await instances.status.edit('ts-sleeper', { ...target, status: 'terminate' });
out.sleeper_after = (await instances.get('ts-sleeper', target)).status;

// events.create: the body is the payload, sent as it is.
await instances.create('ts-approval', { account_id, instance_id: 'ts-approver' });
out.event = await instances.events.create('approved', {
  account_id,
  workflow_name: 'ts-approval',
  instance_id: 'ts-approver',
  body: { by: 'grace' },
});
out.approved = await waitFor('ts-approval', 'ts-approver', ['complete', 'errored']);

// Errors, as the SDK raises them; a 409 must not be sent three times.
out.not_found = await caught(() =>
  instances.get('ts-missing', { account_id, workflow_name: 'ts-quick' }),
);
const before = requests.length;
out.conflict = await caught(() =>
  instances.create('ts-quick', { account_id, instance_id: 'ts-one' }),
);
out.conflict_requests = requests.length - before;

process.stdout.write(JSON.stringify(out));
