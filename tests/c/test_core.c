#include "helpers.h"
static void test_core_placeholder(void **s) { (void)s; assert_string_equal(ls_rc_name(LS_EAUTH), "EAUTH"); }
int main(void) { const struct CMUnitTest t[] = { cmocka_unit_test(test_core_placeholder) }; return cmocka_run_group_tests(t, NULL, NULL); }
