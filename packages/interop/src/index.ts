/**
 * @alexnet/interop: AlexNet weights in and out. Reads the files torch.save writes (zip and legacy
 * formats) with a restricted unpickler that runs nothing, imports torchvision's AlexNet with its
 * 1000 ILSVRC-2012 classes and preprocessing, and exports the paper's nets and torchvision's to ONNX
 * and to safetensors by PyTorch names. It knows nothing of the checkpoint file: it takes and returns
 * plain objects (a model record, weights by name, classes, preprocessing) that @alexnet/train writes.
 */
export { InteropError } from './errors.js';
export { ZipArchive, looksLikeZip, type ZipEntry } from './zip.js';
export { unpickle, PyDict, PyTuple, PyGlobal, OPCODES, type GlobalHandler, type UnpickleOptions } from './pickle.js';
export {
  parseTorchFile, readTorchStateDict, stateDictOf, toHostTensor, TorchTensor, STORAGE_TYPES, TORCH_GLOBALS,
  type TorchDtype, type TorchFile, type TorchStateDict,
} from './torch-file.js';
export { ilsvrc2012Classes, type ClassEntry } from './classes.js';
export {
  TORCHVISION_PREPROCESSING, checkPreprocessing, preprocessImage, preprocessFor, normalizePixels, resizedSize, roundHalfEven, resizeBilinearWindow,
  type Preprocessing, type PreprocessedImage,
} from './preprocess.js';
export { resolveSource, weightProblems, type ModelConfig, type ModelSource } from './model.js';
export { importTorchvision, type ImportOptions, type ImportedModel } from './torchvision.js';
export { exportOnnx, encodeOnnx, ONNX_OPSET, type OnnxExportOptions, type OnnxExportResult } from './onnx.js';
export { exportSafetensors, type SafetensorsExportResult } from './safetensors-export.js';
