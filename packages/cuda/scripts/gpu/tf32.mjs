// `node --import tf32.mjs ...`: registers the cuda backends (as importing @alexnet/cuda does) with
// TF32 tensor cores on for every 'cuda' device of the process (cuda.setTf32), so that a program that
// knows nothing of TF32 (@alexnet/train's benchmark) runs its GEMMs and convolutions with them.
import { cuda } from '@alexnet/cuda';

cuda.setTf32(true);
