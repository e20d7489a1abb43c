import http from 'node:http';
import { Worker } from 'node:worker_threads';

export interface SentRequest {
  method?: string;
  /** Path and query, e.g. `/v1/query/websites?api_key=...`. */
  path: string;
  headers?: Record<string, string>;
  body?: string;
}

export interface Answer {
  status: number;
  body: string;
}

/** Requests over keep-alive connections, at most `connections` at a time, as a load generator would. */
export class HttpClient {
  readonly #origin: URL;
  readonly #agent: http.Agent;

  constructor(origin: string, connections = 50) {
    this.#origin = new URL(origin);
    this.#agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  }

  send(request: SentRequest): Promise<Answer> {
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          agent: this.#agent,
          host: this.#origin.hostname,
          port: this.#origin.port,
          method: request.method ?? 'GET',
          path: request.path,
          headers: request.headers,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
          );
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(request.body);
    });
  }

  /** Sends every request, `concurrency` in flight at once; answers in the order of `requests`. */
  async sendAll(requests: readonly SentRequest[], concurrency = 50): Promise<Answer[]> {
    const answers: Answer[] = new Array(requests.length);
    let next = 0;
    const worker = async () => {
      while (next < requests.length) {
        const index = next++;
        answers[index] = await this.send(requests[index]!);
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, requests.length) }, worker));
    return answers;
  }

  close(): void {
    this.#agent.destroy();
  }
}

// Plain JavaScript: a worker thread runs it without the test's TypeScript loader.
const LOAD_WORKER = `
const http = require('node:http');
const { parentPort, workerData } = require('node:worker_threads');
const { origin, requests, connections } = workerData;
const url = new URL(origin);
const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
const send = (r) => new Promise((resolve, reject) => {
  const req = http.request(
    { agent, host: url.hostname, port: url.port, method: r.method || 'GET', path: r.path, headers: r.headers },
    (res) => { res.resume(); res.on('end', () => resolve(res.statusCode)); res.on('error', reject); },
  );
  req.on('error', reject);
  req.end(r.body);
});
(async () => {
  const statuses = new Array(requests.length);
  let next = 0;
  await Promise.all(Array.from({ length: connections }, async () => {
    while (next < requests.length) { const i = next++; statuses[i] = await send(requests[i]); }
  }));
  agent.destroy();
  parentPort.postMessage(statuses);
})().catch((error) => { throw error; });
`;

/**
 * Sends every request from a worker thread over `connections` keep-alive connections, as a load
 * generator in its own process would (the server keeps this thread to itself). Resolves with the
 * status codes, in the order of `requests`.
 */
export function loadFromWorker(
  origin: string,
  requests: readonly SentRequest[],
  connections = 50,
): Promise<number[]> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(LOAD_WORKER, {
      eval: true,
      workerData: { origin, requests, connections },
    });
    worker.once('message', (statuses: number[]) => resolve(statuses));
    worker.once('error', reject);
    worker.once('exit', (code) => {
      if (code !== 0) reject(new Error(`the load worker exited with code ${code}`));
    });
  });
}

export interface SteadyLoad {
  /** Answers received so far with `status`. */
  count(status: number): number;
  /** Resolves once every connection's loop has ended: the server stopped accepting connections. */
  done: Promise<{ statuses: Map<number, number>; errors: number; closedByServer: number }>;
}

/**
 * Sends `request` over `connections` keep-alive connections, each as soon as the previous answer
 * arrived, until the server refuses new connections (it stopped listening): the load of a rolling
 * deploy's clients. Counts answers by status, failed requests (a connection reset under a request),
 * and answers that carried `Connection: close`.
 */
export function steadyLoad(origin: string, request: SentRequest, connections = 50): SteadyLoad {
  const url = new URL(origin);
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  const statuses = new Map<number, number>();
  let errors = 0;
  let closedByServer = 0;
  const send = () =>
    new Promise<void>((resolve, reject) => {
      const req = http.request(
        {
          agent,
          host: url.hostname,
          port: url.port,
          method: request.method ?? 'GET',
          path: request.path,
          headers: request.headers,
        },
        (res) => {
          res.resume();
          res.on('end', () => {
            const status = res.statusCode ?? 0;
            statuses.set(status, (statuses.get(status) ?? 0) + 1);
            if (res.headers.connection === 'close') closedByServer++;
            resolve();
          });
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(request.body);
    });
  const loop = async () => {
    // A server that resets every connection without ever refusing one would loop forever.
    for (let failed = 0; failed < 1_000; ) {
      try {
        await send();
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ECONNREFUSED') return;
        errors++;
        failed++;
      }
    }
  };
  const done = Promise.all(Array.from({ length: connections }, loop)).then(() => {
    agent.destroy();
    return { statuses, errors, closedByServer };
  });
  return { count: (status) => statuses.get(status) ?? 0, done };
}
