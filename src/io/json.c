/* json.c -- strict JSON for the files ntkhess reads (config.json): cJSON
 * accepts duplicate keys (the first wins), bytes after the value and
 * "\u0000" inside strings (which truncates the C string); each of these
 * lets a file say something other than what it seems to, so all three are
 * refused here. */
#include "core/internal.h"
#include "io/io_internal.h"

#include <stdlib.h>
#include <string.h>

static int cmp_names(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The first duplicated key in any object under item, or NULL. */
static const char *dup_key(const cJSON *item, int depth) {
    if (depth > 256) return "(nested too deep)";
    size_t n = 0;
    for (const cJSON *c = item->child; c; c = c->next) n++;
    if (cJSON_IsObject(item) && n > 1) {
        const char **names = malloc(n * sizeof *names);
        if (!names) return "(out of memory)";
        size_t k = 0;
        for (const cJSON *c = item->child; c; c = c->next) names[k++] = c->string ? c->string : "";
        qsort(names, n, sizeof *names, cmp_names);
        const char *dup = NULL;
        for (size_t i = 1; i < n && !dup; i++)
            if (!strcmp(names[i - 1], names[i])) dup = names[i];
        free(names);
        if (dup) return dup;
    }
    for (const cJSON *c = item->child; c; c = c->next) {
        const char *d = dup_key(c, depth + 1);
        if (d) return d;
    }
    return NULL;
}

/* Offset of a \u0000 escape inside a string, or len. */
static size_t nul_escape(const char *t, size_t len) {
    int in = 0;
    for (size_t i = 0; i < len; i++) {
        if (!in) { in = t[i] == '"'; continue; }
        if (t[i] == '"') { in = 0; continue; }
        if (t[i] != '\\' || i + 1 >= len) continue;
        if (t[i + 1] == 'u' && i + 5 < len && !strncmp(t + i + 2, "0000", 4)) return i;
        i++; /* skip the escaped character */
    }
    return len;
}

static void line_col(const char *t, size_t off, size_t *line, size_t *col) {
    *line = 1, *col = 1;
    for (size_t i = 0; i < off; i++) {
        if (t[i] == '\n') { (*line)++; *col = 1; } else (*col)++;
    }
}

nh_status nh__json_parse_strict(const char *func, const char *path, const char *text, size_t len, cJSON **out) {
    *out = NULL;
    size_t line, col;
    const char *nul = memchr(text, 0, len);
    if (nul) {
        line_col(text, (size_t)(nul - text), &line, &col);
        return nh__fail(NH_EFORMAT, func, "%s: a NUL byte at line %zu, column %zu", path, line, col);
    }
    size_t esc = nul_escape(text, len);
    if (esc < len) {
        line_col(text, esc, &line, &col);
        return nh__fail(NH_EFORMAT, func, "%s: \\u0000 in a string at line %zu, column %zu", path, line, col);
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    size_t off = end && end >= text && end <= text + len ? (size_t)(end - text) : 0;
    if (!root) {
        line_col(text, off, &line, &col);
        return nh__fail(NH_EFORMAT, func, "%s: invalid JSON near line %zu, column %zu", path, line, col);
    }
    while (off < len && strchr(" \t\r\n", text[off])) off++;
    if (off < len) {
        cJSON_Delete(root);
        line_col(text, off, &line, &col);
        return nh__fail(NH_EFORMAT, func, "%s: bytes after the JSON value at line %zu, column %zu", path, line, col);
    }
    const char *dup = dup_key(root, 0);
    if (dup) {
        nh_status st = nh__fail(NH_EFORMAT, func, "%s: duplicate key \"%.64s\"", path, dup);
        cJSON_Delete(root);
        return st;
    }
    *out = root;
    return NH_OK;
}
