/*
 * fuzz_config: the configuration file as dualregd and dualregctl load it
 * (cfg_load_string: libinih, every key's parser and bounds), then the comparisons a
 * reload makes (cfg_differences, cfg_keep_restart_only) against the defaults. The same
 * text also goes to each value parser on its own (listen address, duration, size,
 * retry schedule), whose results must lie within what they promise.
 */
#include "dualreg/config.h"
#include "fuzz.h"

static void value_parsers(const char *text)
{
	char err[256], host[256];
	uint16_t port;
	if (cfg_parse_listen(text, host, sizeof host, &port, err, sizeof err) == 0)
		FUZZ_ASSERT(host[0] != '\0' && strlen(host) < sizeof host);
	unsigned ms;
	if (cfg_parse_duration_ms(text, &ms, err, sizeof err) == 0)
		FUZZ_ASSERT(ms <= 4000000000u);
	size_t size;
	if (cfg_parse_size(text, &size, err, sizeof err) == 0)
		FUZZ_ASSERT(size <= (size_t)1 << 40);
	unsigned sched[CFG_SCHEDULE_MAX], len = 0;
	if (cfg_parse_schedule(text, sched, CFG_SCHEDULE_MAX, &len, err, sizeof err) == 0)
		FUZZ_ASSERT(len >= 1 && len <= CFG_SCHEDULE_MAX);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool quiet;
	if (!quiet) {
		/* The environment's overrides would mask what the text says. */
		unsetenv("DUALREG_DATABASE_URL");
		unsetenv("DUALREG_LISTEN");
		unsetenv("DUALREG_LOG_LEVEL");
		quiet = true;
	}
	char *text = fuzz_cstr(data, size);
	char err[512];
	struct config cfg;
	err[0] = '\0';
	if (cfg_load_string(&cfg, "fuzz.conf", text, err, sizeof err) == 0) {
		FUZZ_ASSERT(cfg.webhook_schedule_len >= 1 &&
			    cfg.webhook_schedule_len <= CFG_SCHEDULE_MAX);
		FUZZ_ASSERT(cfg.listen_host[0] != '\0');
		struct config defaults;
		cfg_defaults(&defaults);
		char names[512];
		int differ = cfg_differences(&cfg, &defaults, names, sizeof names);
		FUZZ_ASSERT(differ >= 0 && strlen(names) < sizeof names);
		FUZZ_ASSERT(cfg_differences(&defaults, &cfg, names, sizeof names) == differ);
		cfg_keep_restart_only(&cfg, &defaults, names, 16);
		FUZZ_ASSERT(strlen(names) < 16);
		cfg_free(&defaults);
		cfg_free(&cfg);
	} else {
		FUZZ_ASSERT(err[0] != '\0' && strlen(err) < sizeof err);
	}
	value_parsers(text);
	free(text);
	return 0;
}
