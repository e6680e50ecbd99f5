#pragma once
#include <curl/curl.h>

/*
 * curl_easy_setopt() and curl_easy_getinfo() are variadic, which Swift cannot call. These typed
 * wrappers cover the argument kinds libcurl documents (long, pointer, curl_off_t, data callback).
 * Each returns the CURLcode of the call it wraps. The parentheses around the function name keep
 * curl's type-checking macro of the same name from expanding.
 */

/** Sets an option that takes a long. */
static inline CURLcode shifter_curl_setopt_long(CURL *_Nonnull handle, CURLoption option, long value) {
    return (curl_easy_setopt)(handle, option, value);
}

/** Sets an option that takes a pointer: a string, a curl_slist, or user data. */
static inline CURLcode shifter_curl_setopt_pointer(CURL *_Nonnull handle, CURLoption option, const void *_Nullable value) {
    return (curl_easy_setopt)(handle, option, value);
}

/** Sets an option that takes a curl_off_t. */
static inline CURLcode shifter_curl_setopt_offset(CURL *_Nonnull handle, CURLoption option, curl_off_t value) {
    return (curl_easy_setopt)(handle, option, value);
}

/** Sets CURLOPT_WRITEFUNCTION or CURLOPT_HEADERFUNCTION. */
static inline CURLcode shifter_curl_setopt_data_callback(
    CURL *_Nonnull handle, CURLoption option,
    size_t (*_Nullable callback)(char *_Nonnull data, size_t size, size_t count, void *_Nullable user)) {
    return (curl_easy_setopt)(handle, option, callback);
}

/** Reads a long item, such as CURLINFO_RESPONSE_CODE. */
static inline CURLcode shifter_curl_getinfo_long(CURL *_Nonnull handle, CURLINFO info, long *_Nonnull value) {
    return (curl_easy_getinfo)(handle, info, value);
}

/** Reads a string item, such as CURLINFO_REDIRECT_URL; the string belongs to the handle. */
static inline CURLcode shifter_curl_getinfo_string(CURL *_Nonnull handle, CURLINFO info, const char *_Nullable *_Nonnull value) {
    return (curl_easy_getinfo)(handle, info, value);
}
