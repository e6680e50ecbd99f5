/* A stand-in for the NVIDIA driver's libcuda.so.1, for tests on machines without a GPU. */
int cuInit(unsigned int flags) { (void)flags; return 0; }
int cuDeviceGetCount(int *count) { *count = 1; return 0; }
