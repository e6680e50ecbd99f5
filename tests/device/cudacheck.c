/* Loads the host's CUDA driver library the way a CUDA program does, and counts the GPUs. */
#include <dlfcn.h>
#include <stdio.h>

typedef int (*cu_init_fn)(unsigned int);
typedef int (*cu_count_fn)(int *);

int main(void) {
    void *cuda = dlopen("libcuda.so.1", RTLD_NOW);
    if (cuda == NULL) {
        fprintf(stderr, "cudacheck: dlopen libcuda.so.1: %s\n", dlerror());
        return 2;
    }
    cu_init_fn cu_init = (cu_init_fn)dlsym(cuda, "cuInit");
    cu_count_fn cu_count = (cu_count_fn)dlsym(cuda, "cuDeviceGetCount");
    if (cu_init == NULL || cu_count == NULL) {
        fprintf(stderr, "cudacheck: libcuda.so.1 lacks cuInit or cuDeviceGetCount\n");
        return 2;
    }
    int status = cu_init(0);
    int count = -1;
    if (status == 0) status = cu_count(&count);
    printf("cuInit/cuDeviceGetCount status %d, devices %d\n", status, count);
    return status == 0 ? 0 : 1;
}
