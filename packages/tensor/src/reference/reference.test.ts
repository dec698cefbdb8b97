import { runConformanceSuite } from '../conformance/index.js';
import '../index.js';

// The oracle against itself exercises the engine plumbing (buffers, offsets, poisoning, queues).
// Its float32 storage still rounds, so the suite's tolerance applies as for any backend.
runConformanceSuite('reference', { alexnetShapes: false, required: true });
