/* io_internal.h -- private helpers of libntkhess-io (never installed). */
#ifndef NH_IO_INTERNAL_H
#define NH_IO_INTERNAL_H
#include <cjson/cJSON.h>

/* Parse text[len] as one JSON value, strictly: refuses (NH_EFORMAT, message
 * naming path and line:column) a NUL byte, a \u0000 escape, bytes after the
 * value other than white space, and a duplicate key in any object.  *out is
 * the tree (cJSON_Delete) or NULL on failure. */
nh_status nh__json_parse_strict(const char *func, const char *path, const char *text, size_t len, cJSON **out);
#endif
