// The shared conformance suite (src/conformance) on the native CPU backend.
import { runConformanceSuite } from '../conformance/index.js';
import { registerBackend } from '../device.js';
import { cpuBackend } from './index.js';

registerBackend(cpuBackend);
runConformanceSuite('cpu');
