/* openapi: every routed path is documented in api/openapi.yaml, and nothing more. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../api/handlers.h"
#include "harness.h"
#include "suites.h"

/* Reads the "paths:" keys (two-space indented "  /x:" lines) of the contract. */
static size_t contract_paths(char paths[][160], size_t max)
{
	char file[512], line[512];
	snprintf(file, sizeof file, "%s/api/openapi.yaml", th_env("DUALREG_TEST_ROOT"));
	FILE *f = fopen(file, "r");
	ck_assert_msg(f != NULL, "cannot open %s", file);
	bool in_paths = false;
	size_t n = 0;
	while (fgets(line, sizeof line, f) != NULL) {
		if (line[0] != ' ' && line[0] != '\n' && line[0] != '#')
			in_paths = strncmp(line, "paths:", 6) == 0;
		else if (in_paths && strncmp(line, "  /", 3) == 0 && n < max) {
			size_t len = strcspn(line + 2, ":");
			snprintf(paths[n++], 160, "%.*s", (int)len, line + 2);
		}
	}
	fclose(f);
	return n;
}

START_TEST(test_routes_documented)
{
	char paths[256][160];
	size_t n = contract_paths(paths, 256);
	ck_assert_uint_gt(n, 0);
	for (size_t i = 0; i < api_nroutes; i++) {
		bool found = false;
		for (size_t j = 0; j < n && !found; j++)
			found = strcmp(paths[j], api_routes[i].pattern) == 0;
		ck_assert_msg(found, "route %s is missing from api/openapi.yaml",
			      api_routes[i].pattern);
	}
	for (size_t j = 0; j < n; j++) {
		bool routed = false;
		for (size_t i = 0; i < api_nroutes && !routed; i++)
			routed = strcmp(paths[j], api_routes[i].pattern) == 0;
		ck_assert_msg(routed, "api/openapi.yaml documents %s, which is not routed", paths[j]);
	}
}
END_TEST

Suite *openapi_suite(void)
{
	Suite *s = suite_create("openapi");
	TCase *tc = tcase_create("contract");
	tcase_add_test(tc, test_routes_documented);
	suite_add_tcase(s, tc);
	return s;
}
