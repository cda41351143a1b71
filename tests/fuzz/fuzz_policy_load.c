/* SPDX-License-Identifier: MIT
 * libFuzzer: compiling a policy declaration (ls_policy_load) from fuzzed
 * JSON, with the key files of test_fuzz.c in a temp dir. Declarations
 * that would reach the network (any key containing "url"), create files
 * (an assertion key other than the prepared as.key) or read files outside
 * the temp dir (absolute names, "..") are skipped, as are JWT caches over
 * 65536 entries (legitimately large allocations). */
#include "fuzz_policy.h"

#include <jansson.h>

#include "ls_json.h"

static ls_policy_opts opts;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    policy_files();
    opts = policy_opts();
    return 0;
}

/* 0 when the declaration must not be tried (see above). */
static int acceptable(const json_t *v, int depth)
{
    if (depth > 64) return 0;
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        if (s[0] == '/' || strstr(s, "..")) return 0;
        return 1;
    }
    if (json_is_object(v)) {
        const char *k;
        json_t *c;
        json_object_foreach((json_t *)v, k, c)
        {
            if (strstr(k, "url")) return 0;
            if (strcmp(k, "cache_size") == 0 && json_is_integer(c) && json_integer_value(c) > 65536)
                return 0;
            if (strcmp(k, "assertion") == 0) {
                json_t *kf = json_is_object(c) ? json_object_get(c, "key_file") : NULL;
                if (!json_is_string(kf) || strcmp(json_string_value(kf), "as.key") != 0) return 0;
            }
            if (!acceptable(c, depth + 1)) return 0;
        }
        return 1;
    }
    if (json_is_array(v)) {
        size_t i;
        json_t *c;
        json_array_foreach(v, i, c) if (!acceptable(c, depth + 1)) return 0;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65536) return 0;
    json_t *pre = NULL;
    if (ls_json_parse((const char *)data, size, &pre, NULL) == LS_OK) {
        int ok = acceptable(pre, 0);
        json_decref(pre);
        if (!ok) return 0;
    }
    char *c = fuzz_exact(data, size);
    ls_policy_t *p = NULL;
    ls_err err;
    fuzz_err_poison(&err);
    ls_rc rc = ls_policy_load(&p, c, size, &opts, &err);
    free(c);
    if (rc != LS_OK && rc != LS_EINVAL && rc != LS_ENOTFOUND && rc != LS_EFORMAT &&
        rc != LS_EPERM && rc != LS_EIO)
        FUZZ_BUG("ls_policy_load returned %s (%s)", ls_rc_name(rc), err.msg);
    fuzz_check_err(rc, &err);
    if ((rc == LS_OK) != (p != NULL)) FUZZ_BUG("rc and handle disagree");
    if (p) {
        const char *name = ls_policy_name(p);
        if (name == NULL || name[0] == '\0') FUZZ_BUG("loaded policy without a name");
        for (size_t i = 0; i < ls_policy_header_count(p); i++)
            if (ls_policy_header_name(p, i) == NULL) FUZZ_BUG("NULL header name");
        for (size_t i = 0; i < ls_policy_strip_count(p); i++)
            if (ls_policy_strip_name(p, i) == NULL) FUZZ_BUG("NULL strip name");
        int nb = ls_policy_needs_body(p);
        if (nb < 0 || nb > LS_POLICY_BODY_EVERY_PATH) FUZZ_BUG("needs_body is %d", nb);
        int pb = ls_policy_path_needs_body(p, "/a/b", 4);
        if (pb != 0 && pb != 1) FUZZ_BUG("path_needs_body is %d", pb);
        if (pb && !nb) FUZZ_BUG("a path needs the body of a policy that needs none");
        (void)ls_policy_request_id_header(p, NULL);
        /* one anonymous request through it */
        ls_str headers[64];
        memset(headers, 0, sizeof headers);
        ls_policy_request req = {.method = {"GET", 3},
                                 .path = {"/a/b", 4},
                                 .host = {"h", 1},
                                 .remote_addr = {"127.0.0.1", 9},
                                 .headers = headers};
        ls_policy_decision d;
        if (ls_policy_header_count(p) <= 64) {
            if (ls_policy_eval(p, &req, &d, &err) != LS_OK) FUZZ_BUG("eval failed");
            if (d.allow != 0 && d.allow != 1) FUZZ_BUG("allow is %d", d.allow);
        }
        ls_policy_free(p);
    }
    return 0;
}
