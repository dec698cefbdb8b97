/*
 * The MPI library's own all-reduce figure, for `npm run bench`: MPI_Allreduce (MPI_IN_PLACE, float32,
 * sum) of AlexNet's gradient (60,965,224 values, 243.9 MB) called from C, as one call and in pieces of
 * CHUNK bytes (the pieces @alexnet/distributed uses), best of ROUNDS after a warm-up, the slowest rank
 * deciding each round. Rank 0 prints one JSON line per form. Compiled with mpicc by the bench.
 *   usage: mpi-allreduce <count> <chunk bytes> <rounds>
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

static double round_time(float *buf, long count, long per) {
  MPI_Barrier(MPI_COMM_WORLD);
  double t0 = MPI_Wtime();
  for (long off = 0; off < count; off += per) {
    long n = count - off < per ? count - off : per;
    MPI_Allreduce(MPI_IN_PLACE, buf + off, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
  }
  double t = MPI_Wtime() - t0, worst;
  MPI_Allreduce(&t, &worst, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return worst;
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int rank, size;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  long count = argc > 1 ? atol(argv[1]) : 60965224L;
  long chunk = argc > 2 ? atol(argv[2]) : 4L << 20;
  int rounds = argc > 3 ? atoi(argv[3]) : 3;
  float *buf = malloc(sizeof(float) * count);
  for (long i = 0; i < count; i++) buf[i] = (float)(i % 13) * 0.001f + (float)rank;
  long pers[2] = { count, chunk / 4 };
  const char *names[2] = { "one call", "pieces" };
  for (int f = 0; f < 2; f++) {
    round_time(buf, count, pers[f]); /* warm-up: first touch of the shared-memory segments */
    double best = 1e30;
    for (int r = 0; r < rounds; r++) { double t = round_time(buf, count, pers[f]); if (t < best) best = t; }
    if (rank == 0) printf("{\"form\":\"%s\",\"pieceBytes\":%ld,\"bytes\":%ld,\"seconds\":%.6f,\"ranks\":%d}\n", names[f], pers[f] * 4, count * 4, best, size);
  }
  free(buf);
  MPI_Finalize();
  return 0;
}
