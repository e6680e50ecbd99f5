#pragma once
#include <sqlite3.h>

/*
 * SQLITE_TRANSIENT is a macro that casts -1 to a destructor pointer, which Swift cannot import.
 * These wrappers bind with it, so SQLite copies the value before the call returns. Each returns
 * the SQLite result code of the call it wraps.
 */

/** Binds UTF-8 text of `length` bytes to parameter `index` (1-based); SQLite copies it. */
static inline int shifter_sqlite3_bind_text_copy(sqlite3_stmt *_Nonnull statement, int index, const char *_Nonnull text, int length) {
    return sqlite3_bind_text(statement, index, text, length, SQLITE_TRANSIENT);
}
