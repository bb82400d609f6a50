// Integration test of `floatllm serve` with OpenAI's official Node.js client: models, a
// completion, a streamed chat, error responses, then 200 requests 4 at a time while the server's
// resident memory is watched. Usage: node openai_client_test.mjs FLOATLLM MODEL NPM_DIR
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import assert from 'node:assert/strict';

const [floatllm, modelPath, npmDir] = process.argv.slice(2);
const require = createRequire(path.join(npmDir, 'package.json'));
const OpenAI = require('openai');

const server = spawn(floatllm, ['serve', '-m', modelPath, '--host', '127.0.0.1', '--port', '0',
                                '--parallel', '2', '-c', '256', '-t', '1'],
                     { stdio: ['ignore', 'inherit', 'pipe'] });
let serverLog = '';
const baseURL = await new Promise((resolve, reject) => {
  server.stderr.on('data', (chunk) => {
    serverLog += chunk;
    const match = /http:\/\/127\.0\.0\.1:(\d+)\/v1/.exec(serverLog);
    if (match) resolve(`http://127.0.0.1:${match[1]}/v1`);
  });
  server.on('exit', (code) => reject(new Error(`server exited with ${code}: ${serverLog}`)));
  setTimeout(() => reject(new Error(`server did not start: ${serverLog}`)), 30000);
});
const serverExited = new Promise((resolve) => server.on('exit', (code, signal) =>
  resolve({ code, signal })));

const client = new OpenAI({ baseURL, apiKey: 'unused', maxRetries: 0, timeout: 60000 });
const model = 'stories260K';
const rssKiB = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${server.pid}/status`,
                                                               'utf8'))[1]);
const post = (route, body) => fetch(`${baseURL}${route}`, {
  method: 'POST', headers: { 'Content-Type': 'application/json' }, body });

async function expectError(promise, status, code) {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof OpenAI.APIError, `not an APIError: ${error}`);
    assert.equal(error.status, status);
    assert.equal(error.code, code);
    assert.equal(typeof error.error.message, 'string');
    return;
  }
  assert.fail(`expected HTTP ${status} ${code}`);
}

async function expectRawError(route, body, status, param) {
  const response = await post(route, body);
  assert.equal(response.status, status);
  const json = await response.json();
  assert.deepEqual(Object.keys(json.error).sort(), ['code', 'message', 'param', 'type']);
  assert.equal(json.error.type, 'invalid_request_error');
  assert.equal(json.error.param, param);
}

try {
  const health = await fetch(baseURL.replace('/v1', '/health'));
  assert.deepEqual(await health.json(), { status: 'ok' });

  const models = await client.models.list();
  assert.deepEqual(models.data.map((m) => m.id), [model]);

  // A greedy completion: deterministic, cut by max_tokens.
  const request = { model, prompt: 'Once upon a time', max_tokens: 16, temperature: 0 };
  const completion = await client.completions.create(request);
  assert.equal(completion.object, 'text_completion');
  assert.ok(completion.choices[0].text.length > 0);
  assert.equal(completion.choices[0].finish_reason, 'length');
  assert.equal(completion.usage.completion_tokens, 16);
  assert.ok(completion.usage.prompt_tokens >= 5);
  assert.equal(completion.usage.total_tokens,
               completion.usage.prompt_tokens + completion.usage.completion_tokens);
  const again = await client.completions.create(request);
  assert.equal(again.choices[0].text, completion.choices[0].text);

  // A streamed chat with usage in the last chunk.
  const stream = await client.chat.completions.create({
    model, stream: true, stream_options: { include_usage: true }, max_tokens: 24, seed: 7,
    messages: [{ role: 'system', content: 'Stories.' }, { role: 'user', content: 'A cat?' }],
  });
  let streamed = '';
  let finish = null;
  let usage = null;
  let chunks = 0;
  for await (const chunk of stream) {
    assert.equal(chunk.object, 'chat.completion.chunk');
    if (chunk.usage) usage = chunk.usage;
    if (chunk.choices.length === 0) continue;
    chunks += 1;
    streamed += chunk.choices[0].delta.content ?? '';
    finish = chunk.choices[0].finish_reason ?? finish;
  }
  assert.ok(chunks > 2, `only ${chunks} chunks`);
  assert.ok(streamed.length > 0);
  assert.ok(['stop', 'length'].includes(finish));
  assert.ok(usage && usage.completion_tokens > 0 && usage.completion_tokens <= 24);

  // The same chat without streaming and with the same seed gives the same text.
  const whole = await client.chat.completions.create({
    model, max_tokens: 24, seed: 7,
    messages: [{ role: 'system', content: 'Stories.' }, { role: 'user', content: 'A cat?' }],
  });
  assert.equal(whole.choices[0].message.content, streamed);
  assert.equal(whole.choices[0].message.role, 'assistant');

  // A stop string ends the text before it.
  const stopped = await client.completions.create({ ...request, max_tokens: 40, stop: ['.'] });
  assert.ok(!stopped.choices[0].text.includes('.'));
  assert.equal(stopped.choices[0].finish_reason, 'stop');

  // Errors in OpenAI's shape.
  await expectError(client.completions.create({ ...request, model: 'gpt-9' }), 404,
                    'model_not_found');
  await expectError(client.completions.create({ ...request, prompt: 'hello '.repeat(400) }), 400,
                    'context_length_exceeded');
  await expectError(client.chat.completions.create({ model, messages: [] }), 400,
                    'invalid_value');
  await expectRawError('/completions', '{"prompt": "x", ', 400, null);
  await expectRawError('/completions', '{"prompt": "x", "temperature": "hot"}', 400,
                       'temperature');
  await expectRawError('/chat/completions', '{"messages": [{"role": "user", "content": 1}]}', 400,
                       'messages[0].content');
  const missing = await fetch(`${baseURL}/nothing`);
  assert.equal(missing.status, 404);
  assert.equal((await missing.json()).error.code, 'not_found');

  // Load: 200 requests, 4 at a time; every answer arrives and memory settles.
  let next = 0;
  let answered = 0;
  let rssAfterWarmup = 0;
  const worker = async () => {
    while (next < 200) {
      const index = next++;
      const prompt = `Once upon a time ${index % 7 === 0 ? 'there was a dog' : 'a girl'}`;
      const reply = index % 2 === 0
        ? (await client.completions.create({ model, prompt, max_tokens: 8 })).choices[0].text
        : (await client.chat.completions.create({
            model, max_tokens: 8, messages: [{ role: 'user', content: prompt }] }))
          .choices[0].message.content;
      assert.equal(typeof reply, 'string');
      answered += 1;
      if (answered === 40) rssAfterWarmup = rssKiB();
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
  assert.equal(answered, 200);
  const rssGrowthKiB = rssKiB() - rssAfterWarmup;
  console.log(`load: 200 answers; resident memory grew ${rssGrowthKiB} KiB after the first 40`);
  assert.ok(rssGrowthKiB < 16 * 1024, `resident memory grew ${rssGrowthKiB} KiB`);
} finally {
  server.kill('SIGTERM');
}
const exit = await serverExited;
assert.equal(exit.code, 0, `server exit ${JSON.stringify(exit)}: ${serverLog}`);
console.log('openai client test passed');
