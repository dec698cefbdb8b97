// The array types of the reference kernels (the files of this folder are by op family, named as the
// native engines' kernels are: native/cpu/kernels/*.cpp, native/cuda/kernels/*.cuh).

/** Float32Array (results rounded once on store) or Float64Array (exact float64). */
export type FloatArray = Float32Array | Float64Array;
export type IntArray = Int32Array;
