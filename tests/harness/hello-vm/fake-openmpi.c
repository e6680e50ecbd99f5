/* A stand-in for Open MPI's libmpi.so.40 (and libopen-pal.so.40): an MPI of another ABI, for the
 * test where the mpich module refuses an image it cannot serve. It is never run. */
int ompi_fake_abi_major(void) { return 40; }
