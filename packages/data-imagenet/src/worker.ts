/** Worker-thread entry: runs tasks from the pool one at a time (see pool.ts). */
import { parentPort } from 'node:worker_threads';
import { serializeError } from './errors.js';
import { TaskHandler, type Task } from './worker-tasks.js';

const port = parentPort;
if (port) {
  const handler = new TaskHandler();
  let chain: Promise<void> = Promise.resolve();
  port.on('message', (msg: { id: number; task: Task } | { close: true }) => {
    if ('close' in msg) {
      handler.close();
      port.close();
      return;
    }
    chain = chain.then(async () => {
      try {
        const { result, transfer } = await handler.handle(msg.task, (n) => port.postMessage({ id: msg.id, progress: n }));
        port.postMessage({ id: msg.id, result }, transfer);
      } catch (e) {
        // Class, sentence and fields, rebuilt by the pool as one error of the same class.
        port.postMessage({ id: msg.id, error: serializeError(e) });
      }
    });
  });
}
