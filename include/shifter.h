/*
 * libshifter: the C ABI of the Shifter node runtime.
 *
 * Every function returns SHIFTER_OK (0) on success or a negative SHIFTER_E* status on failure. Where
 * a function takes (char *msg, size_t msglen), a one-line message saying what failed, on what and why
 * is written there, NUL-terminated and truncated to fit. No function throws, traps or exits.
 */
#ifndef SHIFTER_H
#define SHIFTER_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/** The library version, a static NUL-terminated string. */
const char *shifter_version(void);

#ifdef __cplusplus
}
#endif

#endif /* SHIFTER_H */
