/*
 * router and problem: route matching, 404 vs 405, Allow, decoding; the API's route table
 * (names, the flags that audit reads and invalidate cached status, the stages each
 * route passes); problem bodies.
 */
#include <stdbool.h>
#include <string.h>

#include "dualreg/router.h"
#include "../api/handlers.h"
#include "../api/pipeline.h"
#include "../api/problem.h"
#include "suites.h"

static void h(void) {}

static const struct router_route routes[] = {
    {RM_GET, "/healthz", "healthz", ROUTE_PUBLIC, 0, h},
    {RM_GET, "/v1/schools/{urn}", "school", ROUTE_ADMIN, 0, h},
    {RM_PATCH, "/v1/schools/{urn}", "school-patch", ROUTE_ADMIN, 0, h},
    {RM_GET, "/v1/pupils/{upn}/marks/{date}/{session}/history", "history", ROUTE_KEY, 0, h},
    {RM_POST, "/v1/marks", "marks", ROUTE_KEY, 0, h},
};
#define NR (sizeof routes / sizeof routes[0])

START_TEST(test_literal_and_params)
{
	const struct router_route *r;
	struct router_params p;
	unsigned allowed;
	ck_assert_int_eq(router_match(routes, NR, RM_GET, "/healthz", &r, &p, &allowed),
			 ROUTER_FOUND);
	ck_assert_str_eq(r->name, "healthz");
	ck_assert_int_eq(router_match(routes, NR, RM_GET, "/v1/pupils/A123/marks/2026-01-05/AM/history",
				      &r, &p, &allowed),
			 ROUTER_FOUND);
	ck_assert_str_eq(r->name, "history");
	ck_assert_uint_eq(p.n, 3);
	ck_assert_str_eq(p.value[0], "A123");
	ck_assert_str_eq(p.value[1], "2026-01-05");
	ck_assert_str_eq(p.value[2], "AM");
	ck_assert_int_eq(router_match(routes, NR, RM_PATCH, "/v1/schools/100001", &r, &p, &allowed),
			 ROUTER_FOUND);
	ck_assert_str_eq(r->name, "school-patch");
}
END_TEST

START_TEST(test_not_found)
{
	const struct router_route *r;
	struct router_params p;
	unsigned allowed;
	const char *paths[] = {"/", "/healthz/", "/healthzz", "/v1/schools", "/v1/schools/",
			       "/v1/schools/1/x", "//healthz", "/v1/marks/1"};
	for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
		ck_assert_msg(router_match(routes, NR, RM_GET, paths[i], &r, &p, &allowed) ==
				  ROUTER_NOT_FOUND,
			      "%s", paths[i]);
}
END_TEST

START_TEST(test_method_not_allowed)
{
	const struct router_route *r;
	struct router_params p;
	unsigned allowed;
	char allow[96];
	ck_assert_int_eq(router_match(routes, NR, RM_DELETE, "/v1/schools/100001", &r, &p, &allowed),
			 ROUTER_BAD_METHOD);
	router_allow_header(allowed, allow, sizeof allow);
	ck_assert_str_eq(allow, "GET, HEAD, PATCH, OPTIONS");
	ck_assert_int_eq(router_match(routes, NR, RM_GET, "/v1/marks", &r, &p, &allowed),
			 ROUTER_BAD_METHOD);
	router_allow_header(allowed, allow, sizeof allow);
	ck_assert_str_eq(allow, "POST, OPTIONS");
	/* HEAD is served by GET. */
	ck_assert_int_eq(router_match(routes, NR, RM_HEAD, "/healthz", &r, &p, &allowed),
			 ROUTER_FOUND);
	ck_assert_str_eq(router_method_name(RM_PATCH), "PATCH");
	ck_assert_str_eq(router_method_name(RM_OTHER), "OTHER");
}
END_TEST

START_TEST(test_decoding)
{
	const struct router_route *r;
	struct router_params p;
	unsigned allowed;
	ck_assert_int_eq(router_match(routes, NR, RM_GET, "/v1/schools/10%2000", &r, &p, &allowed),
			 ROUTER_FOUND);
	ck_assert_str_eq(p.value[0], "10 00");
	ck_assert_int_eq(router_match(routes, NR, RM_GET, "/v1/schools/%zz", &r, &p, &allowed),
			 ROUTER_NOT_FOUND);
	ck_assert_int_eq(router_match(routes, NR, RM_GET, "/v1/schools/ab%2", &r, &p, &allowed),
			 ROUTER_NOT_FOUND);
	ck_assert_int_eq(router_match(routes, NR, RM_GET, "/v1/schools/%00", &r, &p, &allowed),
			 ROUTER_NOT_FOUND);
	char longpath[400] = "/v1/schools/";
	memset(longpath + strlen(longpath), 'x', ROUTER_PARAM_MAX + 1);
	ck_assert_int_eq(router_match(routes, NR, RM_GET, longpath, &r, &p, &allowed),
			 ROUTER_NOT_FOUND);
}
END_TEST

/* What answering a route does besides the reply is a flag on the route, so a new route
 * cannot silently miss it: every read of one pupil's data is audited (and only those:
 * the audit takes the first parameter for the UPN), every write forgets cached status
 * bodies. */
START_TEST(test_api_route_flags)
{
	const char pupil[] = "/v1/pupils/{upn}";
	for (size_t i = 0; i < api_nroutes; i++) {
		const struct router_route *rt = &api_routes[i];
		size_t n = strlen(pupil);
		bool of_pupil = strncmp(rt->pattern, pupil, n) == 0 &&
				(rt->pattern[n] == '\0' || rt->pattern[n] == '/');
		bool audited = rt->method == RM_GET && of_pupil;
		ck_assert_msg(((rt->flags & ROUTE_AUDIT_READ) != 0) == audited,
			      "%s %s: ROUTE_AUDIT_READ must be set exactly on GET %s...", rt->name,
			      rt->pattern, pupil);
		bool write = (rt->method & (RM_POST | RM_PUT | RM_PATCH | RM_DELETE)) != 0;
		ck_assert_msg(((rt->flags & ROUTE_INVALIDATES_STATUS) != 0) == write,
			      "%s %s: ROUTE_INVALIDATES_STATUS must be set exactly on writes",
			      rt->name, rt->pattern);
	}
}
END_TEST

/* Names label the access log, the metrics and the audit: one style, each used once. */
START_TEST(test_api_route_names)
{
	for (size_t i = 0; i < api_nroutes; i++) {
		const char *name = api_routes[i].name;
		size_t n = strlen(name), dots = 0;
		ck_assert_msg(n > 0 && name[0] != '.' && name[n - 1] != '.', "route name \"%s\"",
			      name);
		for (size_t k = 0; k < n; k++) {
			dots += name[k] == '.';
			ck_assert_msg((name[k] >= 'a' && name[k] <= 'z') || name[k] == '.',
				      "route name \"%s\": lower-case words joined by a dot", name);
		}
		ck_assert_msg(dots <= 1, "route name \"%s\": resource.action", name);
		for (size_t j = 0; j < i; j++)
			ck_assert_msg(strcmp(api_routes[j].name, name) != 0,
				      "route name \"%s\" is used twice", name);
	}
}
END_TEST

/* The stages before each handler, in order (pipeline.c). */
START_TEST(test_api_route_stages)
{
	for (size_t i = 0; i < api_nroutes; i++) {
		const struct router_route *rt = &api_routes[i];
		const char *names[8];
		size_t n = pipeline_stages(rt, rt->method, names, 8);
		char got[128] = "";
		for (size_t k = 0; k < n && k < 8; k++) {
			strcat(got, k ? "," : "");
			strcat(got, names[k]);
		}
		const char *want = "";
		if (rt->access == ROUTE_KEY)
			want = rt->method == RM_POST ? "authenticate,rate-limit,idempotency"
						     : "authenticate,rate-limit";
		else if (rt->access == ROUTE_ADMIN)
			want = rt->method == RM_POST
				   ? "authenticate,authorize,rate-limit,idempotency"
				   : "authenticate,authorize,rate-limit";
		ck_assert_msg(strcmp(got, want) == 0, "%s: stages %s, want %s", rt->name, got,
			      want);
	}
	/* HEAD is served by the GET route, through the same stages. */
	const char *names[8];
	const struct router_route *me = NULL;
	for (size_t i = 0; i < api_nroutes; i++)
		if (strcmp(api_routes[i].name, "me") == 0)
			me = &api_routes[i];
	ck_assert_ptr_nonnull(me);
	ck_assert_uint_eq(pipeline_stages(me, RM_HEAD, names, 8), 2);
}
END_TEST

/* The web app's files are routed by single segments (h_web_static.c): each file route
 * finds its file's name, and none of them answers a path of the JSON API under
 * /app/api/, whatever its depth. */
static bool is_web_file_route(const struct router_route *rt)
{
	return rt->handler == (void (*)(void))h_web_page ||
	       rt->handler == (void (*)(void))h_web_script ||
	       rt->handler == (void (*)(void))h_web_style ||
	       rt->handler == (void (*)(void))h_web_index ||
	       rt->handler == (void (*)(void))h_web_redirect;
}

START_TEST(test_api_web_routes)
{
	static const struct {
		const char *path, *name, *param;
	} files[] = {
	    {"/", "web.root", NULL},
	    {"/app", "web.app", NULL},
	    {"/app/", "web.index", NULL},
	    {"/app/setup", "web.page", "setup"},
	    {"/app/favicon.svg", "web.page", "favicon.svg"},
	    {"/app/js/app.js", "web.script", "app.js"},
	    {"/app/css/app.css", "web.style", "app.css"},
	};
	const struct router_route *r;
	struct router_params p;
	unsigned allowed;
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
		ck_assert_msg(router_match(api_routes, api_nroutes, RM_GET, files[i].path, &r, &p,
					   &allowed) == ROUTER_FOUND,
			      "%s", files[i].path);
		ck_assert_str_eq(r->name, files[i].name);
		ck_assert_int_eq(r->access, ROUTE_PUBLIC);
		if (files[i].param != NULL)
			ck_assert_str_eq(p.value[0], files[i].param);
	}
	const char *api_paths[] = {"/app/api/session", "/app/api/setup", "/app/api/x",
				   "/app/api/session/second-factor", "/app/api/a/b/c"};
	for (size_t i = 0; i < sizeof api_paths / sizeof api_paths[0]; i++) {
		for (unsigned m = RM_GET; m <= RM_DELETE; m <<= 1) {
			enum router_outcome o =
			    router_match(api_routes, api_nroutes, m, api_paths[i], &r, &p, &allowed);
			ck_assert_msg(o != ROUTER_FOUND || !is_web_file_route(r),
				      "%s %s is routed to the web app's files",
				      router_method_name(m), api_paths[i]);
		}
	}
	/* The file routes are reads only. */
	for (size_t i = 0; i < api_nroutes; i++)
		if (is_web_file_route(&api_routes[i]))
			ck_assert_uint_eq(api_routes[i].method, RM_GET);
}
END_TEST

Suite *router_suite(void)
{
	Suite *s = suite_create("router");
	TCase *tc = tcase_create("match");
	tcase_add_test(tc, test_literal_and_params);
	tcase_add_test(tc, test_not_found);
	tcase_add_test(tc, test_method_not_allowed);
	tcase_add_test(tc, test_decoding);
	suite_add_tcase(s, tc);
	tc = tcase_create("api_routes");
	tcase_add_test(tc, test_api_route_flags);
	tcase_add_test(tc, test_api_route_names);
	tcase_add_test(tc, test_api_route_stages);
	tcase_add_test(tc, test_api_web_routes);
	suite_add_tcase(s, tc);
	return s;
}

START_TEST(test_problem_shape)
{
	cJSON *p = problem_new(422, "invalid-upn", NULL, "check letter should be B");
	problem_add_error(p, "/marks/0/upn", "bad check letter");
	problem_add_error(p, "/marks/3/date", "not a date");
	ck_assert_str_eq(cJSON_GetObjectItem(p, "type")->valuestring, "/problems/invalid-upn");
	ck_assert_str_eq(cJSON_GetObjectItem(p, "title")->valuestring, "Unprocessable Content");
	ck_assert_int_eq(cJSON_GetObjectItem(p, "status")->valueint, 422);
	ck_assert_str_eq(cJSON_GetObjectItem(p, "detail")->valuestring, "check letter should be B");
	cJSON *errors = cJSON_GetObjectItem(p, "errors");
	ck_assert_int_eq(cJSON_GetArraySize(errors), 2);
	ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(errors, 1), "pointer")->valuestring,
			 "/marks/3/date");
	cJSON_Delete(p);

	p = problem_new(404, NULL, NULL, NULL);
	ck_assert_str_eq(cJSON_GetObjectItem(p, "type")->valuestring, "/problems/not-found");
	ck_assert_ptr_null(cJSON_GetObjectItem(p, "detail"));
	cJSON_Delete(p);
	ck_assert_str_eq(http_reason(413), "Content Too Large");
	ck_assert_str_eq(http_reason(299), "Error");
}
END_TEST

Suite *problem_suite(void)
{
	Suite *s = suite_create("problem");
	TCase *tc = tcase_create("shape");
	tcase_add_test(tc, test_problem_shape);
	suite_add_tcase(s, tc);
	return s;
}
