/**
 * @alexnet/tensor: tensors on devices with asynchronous in-order queues, the backend interface,
 * the reference backend (float64 oracle) and the native CPU backend.
 */
import { registerBackend } from './device.js';
import { cpuBackend } from './cpu/index.js';
import { referenceBackend } from './reference/engine.js';

registerBackend(referenceBackend);
registerBackend(cpuBackend);

export * from './backend.js';
export {
  device, defaultDevice, setDefaultDevice, listDevices, listBackends, registerBackend, getBackend, memory,
  setCoreCount, Device, type DeviceMemory,
} from './device.js';
export {
  Tensor, tensor, empty, zeros, ones, full, randn, uniform, tidy, dispose, copyInto, sizeOf,
  type Shape, type TensorOptions, type RandomOptions,
} from './tensor.js';
export * from './ops.js';
export * from './geometry.js';
export { alexnetShapes, describeConv, describePool, ALEXNET_INPUT, PAPER_LRN, type AlexnetShapes } from './alexnet.js';
export { philoxBlock, fillUniform, fillNormal, uniformAt } from './philox.js';
export {
  encodeSafetensors, decodeSafetensors, saveSafetensors, loadSafetensors, writeFileAtomic, fromHost,
  SafetensorsError, type HostTensor,
} from './safetensors.js';
export { referenceBackend, ReferenceEngine } from './reference/engine.js';
export * as referenceKernels from './reference/kernels.js';
export {
  cpuBackend, cpuIsa, cpuIsaPaths, setCpuIsa, cpuPeakGflops, CPU_DEVICE_COUNT, CpuEngine, type CpuIsa,
  cpuPrecision, setCpuPrecision, type CpuPrecision, type CpuPrecisionState,
} from './cpu/index.js';
export {
  NativeEngine, NativeBuffer, NativeEvent, FORWARDED_OPS, type AddonEngine, type AddonBuffer, type NativeMemoryStats,
} from './native-engine.js';
