# dualreg — build, run and test.
#
#   make run      install missing packages (as root), build, start a private PostgreSQL
#                 under ./var/pg unless DUALREG_DATABASE_URL is set, migrate, seed a demo,
#                 run dualregd on 127.0.0.1:8080
#   make check    the same set-up against a throw-away cluster, then every test
#   make check SAN=1   the tests built with AddressSanitizer + UBSan
#   make fuzz     build the libFuzzer harnesses of tests/fuzz with clang (installed when
#                 missing) and run each for FUZZ_SECONDS (default 60); see README, Fuzzing
#   make lint-openapi  lint api/openapi.yaml (Redocly CLI, pinned in package-lock.json;
#                 installed into ./node_modules with npm ci; needs Node.js >= 20.19)
#   make stop     stop the private cluster started by `make run`
#   make install  PREFIX=/usr/local DESTDIR=
#
# run/check first make sure the Debian packages are present (scripts/deps.sh), then
# re-enter make, because the compiler flags come from pkg-config at parse time.

PREFIX    ?= /usr/local
DESTDIR   ?=
SYSCONFDIR ?= /etc
SBINDIR   = $(PREFIX)/sbin
BINDIR    = $(PREFIX)/bin
DATADIR   = $(PREFIX)/share/dualreg
MANDIR    = $(PREFIX)/share/man
UNITDIR   ?= /lib/systemd/system

SAN ?=
ifeq ($(SAN),1)
BUILD   ?= build/san
OPT     = -O1 -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
LDSAN   = -fsanitize=address,undefined
else
BUILD   ?= build/release
OPT     = -O2
LDSAN   =
endif

PKGS     = libevent libpq libcjson libcurl openssl inih libsystemd libargon2 liboath libqrencode
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) check 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CHECK_LIBS := $(shell pkg-config --libs check libevent_openssl 2>/dev/null)

CC      ?= cc
MAKEFLAGS += --no-print-directory
CFLAGS  ?= $(OPT) -g
WARN    = -Wall -Wextra -Werror -Wshadow -Wmissing-prototypes -Wstrict-prototypes \
          -Wno-format-zero-length
CPPFLAGS += -std=c17 -D_GNU_SOURCE -Iinclude -I$(BUILD)/gen $(PKG_CFLAGS) \
          -DDUALREG_SQLDIR='"$(DATADIR)/sql"' -DDUALREG_WEBDIR='"$(DATADIR)/web"'
LDFLAGS += $(LDSAN)

# Everything but the two programs' entry points; new modules are picked up by name.
CORE_SRCS = $(sort $(filter-out daemon/main.c,$(wildcard daemon/*.c)) \
              $(wildcard daemon/db/*.c daemon/domain/*.c daemon/sync/*.c api/*.c))
DAEMON_SRCS = daemon/main.c
CTL_SRCS    = $(sort $(wildcard ctl/*.c))
TEST_SRCS   = $(wildcard tests/*.c tests/integration/*.c)

CTL_CORE_SRCS = daemon/log.c daemon/xalloc.c daemon/config.c daemon/net_ranges.c \
                daemon/db/migrate.c daemon/auth_token.c daemon/secret_box.c daemon/staff_auth.c \
                $(sort $(wildcard daemon/domain/*.c))
CORE_OBJS   = $(CORE_SRCS:%.c=$(BUILD)/%.o)
CTL_CORE_OBJS = $(CTL_CORE_SRCS:%.c=$(BUILD)/%.o)
DAEMON_OBJS = $(DAEMON_SRCS:%.c=$(BUILD)/%.o)
CTL_OBJS    = $(CTL_SRCS:%.c=$(BUILD)/%.o)
TEST_OBJS   = $(TEST_SRCS:%.c=$(BUILD)/%.o)
ALL_OBJS    = $(CORE_OBJS) $(DAEMON_OBJS) $(CTL_OBJS) $(TEST_OBJS)

# sql/schema: the numbered schema steps, applied once each. sql/functions: the functions
# and triggers, installed in name order on every migrate. A build knows the newest step
# and the checksum of the function files (SHA-256 of their texts concatenated in that
# order, as dualregctl migrate records it), and /readyz compares both with the database.
MIGRATIONS  = $(sort $(wildcard sql/schema/[0-9][0-9][0-9]_*.sql))
FUNCTIONS   = $(sort $(wildcard sql/functions/[0-9][0-9]_*.sql))
SCHEMA_VERSION = $(shell ls sql/schema | sed -n 's/^\([0-9][0-9][0-9]\)_.*\.sql$$/\1/p' | sort | tail -1 | sed 's/^0*//')
FUNCTIONS_CHECKSUM = $(shell cat /dev/null $(FUNCTIONS) | sha256sum | cut -c1-64)

# web/: the staff web app's files, served by dualregd at /app/ (api/h_web_static.c).
WEB_FILES = $(sort $(wildcard web/*.html web/*.svg web/*.txt))
WEB_JS    = $(sort $(wildcard web/js/*.js))
WEB_CSS   = $(sort $(wildcard web/css/*.css))

DATABASE_URL_FILE = var/database_url
RUN_CONFIG ?= config/dualreg.conf.example

.PHONY: all run run-inner check check-inner lint-openapi stop install clean deps bench bench-inner \
        fuzz fuzz-inner fuzz-merge fuzz-replay screenshots soak soak-inner
.DEFAULT_GOAL := all

all: $(BUILD)/dualregd $(BUILD)/dualregctl

# The generated headers are written on every make but replaced only when their text
# changes, so a renamed or removed step or function file is noticed and nothing is
# rebuilt when nothing changed.
$(BUILD)/gen/schema_version.h: FORCE
	@mkdir -p $(@D)
	@echo '/* generated from sql/schema: the newest migration number */' > $@.tmp
	@echo '#define DUALREG_SCHEMA_VERSION $(SCHEMA_VERSION)' >> $@.tmp
	@cmp -s $@.tmp $@ && rm -f $@.tmp || mv $@.tmp $@

# Only the few files that include it (through version.h) are rebuilt when a function
# changes: the compiler's dependency files track it once it exists.
$(BUILD)/gen/sql_functions.h: FORCE
	@mkdir -p $(@D)
	@echo '/* generated from sql/functions: the checksum migrate records for them */' > $@.tmp
	@echo '#define DUALREG_FUNCTIONS_CHECKSUM "$(FUNCTIONS_CHECKSUM)"' >> $@.tmp
	@cmp -s $@.tmp $@ && rm -f $@.tmp || mv $@.tmp $@

# The staff password policy's list of common passwords (daemon/common_passwords.txt) as
# a sorted C array: lower case, comments and blank lines dropped, no repeats.
$(BUILD)/gen/common_passwords.h: daemon/common_passwords.txt
	@mkdir -p $(@D)
	@{ echo '/* generated from daemon/common_passwords.txt */'; \
	  echo 'static const char *const common_passwords[] = {'; \
	  sed -e 's/\r$$//' -e '/^#/d' -e '/^[[:space:]]*$$/d' $< | tr 'A-Z' 'a-z' | LC_ALL=C sort -u | \
	    sed -e 's/[\\"]/\\&/g' -e 's/.*/    "&",/'; \
	  echo '};'; } > $@.tmp && mv $@.tmp $@

$(BUILD)/daemon/staff_auth.o: $(BUILD)/gen/common_passwords.h

FORCE:

$(BUILD)/%.o: %.c $(BUILD)/gen/schema_version.h | $(BUILD)/gen/sql_functions.h
	@mkdir -p $(@D)
	@echo "  CC  $<"
	@$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) -MMD -MP -c $< -o $@

$(BUILD)/dualregd: $(CORE_OBJS) $(DAEMON_OBJS)
	@echo "  LD  $@"
	@$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) -lm

$(BUILD)/dualregctl: $(CTL_CORE_OBJS) $(CTL_OBJS)
	@echo "  LD  $@"
	@$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) -lm

$(BUILD)/check_dualreg: $(CORE_OBJS) $(TEST_OBJS)
	@echo "  LD  $@"
	@$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) -lm $(CHECK_LIBS)

-include $(ALL_OBJS:.o=.d)

# ---- fuzzing (tests/fuzz): one harness per reader of outside input ----
# Each tests/fuzz/fuzz_<name>.c is linked twice: with tests/fuzz/replay.c by the normal
# compiler as fuzz-replay-<name> (make check replays tests/fuzz/corpus/<name> through it,
# with the sanitizers under SAN=1), and by `make fuzz` with libFuzzer as
# build/fuzz/fuzzer-<name>, which fuzzes for FUZZ_SECONDS from that corpus; what it finds
# goes to build/fuzz/corpus, crashes to build/fuzz/crashes (tests/fuzz/run.sh).
FUZZ_NAMES   = $(sort $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c)))
FUZZ_SECONDS ?= 60
FUZZ_OBJS    = $(FUZZ_NAMES:%=$(BUILD)/tests/fuzz/fuzz_%.o) $(BUILD)/tests/fuzz/replay.o
FUZZ_LIBOBJS = $(CORE_OBJS) $(BUILD)/ctl/pupil_csv.o
REPLAY_BINS  = $(FUZZ_NAMES:%=$(BUILD)/fuzz-replay-%)
FUZZ_FLAGS   = -O1 -g -fsanitize=fuzzer-no-link,address,undefined \
               -fno-sanitize-recover=undefined -fno-omit-frame-pointer

-include $(FUZZ_OBJS:.o=.d)
.SECONDARY: $(FUZZ_OBJS)

fuzz-replay: $(REPLAY_BINS)

$(BUILD)/fuzz-replay-%: $(BUILD)/tests/fuzz/fuzz_%.o $(BUILD)/tests/fuzz/replay.o $(FUZZ_LIBOBJS)
	@echo "  LD  $@"
	@$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) -lm

$(BUILD)/fuzzer-%: $(BUILD)/tests/fuzz/fuzz_%.o $(FUZZ_LIBOBJS)
	@echo "  LD  $@"
	@$(CC) $(LDFLAGS) -fsanitize=fuzzer,address,undefined -o $@ $^ $(PKG_LIBS) -lm

# clang and its libFuzzer are needed here only (scripts/deps.sh --fuzz), not by check.
fuzz:
	@scripts/deps.sh --fuzz
	@$(MAKE) --no-print-directory fuzz-inner BUILD=build/fuzz SAN= CC=clang \
	  CFLAGS="$(FUZZ_FLAGS)" LDSAN= WARN="$(filter-out -Werror,$(WARN))"

fuzz-inner: $(FUZZ_NAMES:%=$(BUILD)/fuzzer-%)
	@tests/fuzz/run.sh $(BUILD) $(FUZZ_SECONDS) $(FUZZ_NAMES)

# After `make fuzz`: copies the inputs that reach new code into tests/fuzz/corpus.
fuzz-merge:
	@tests/fuzz/run.sh --merge build/fuzz $(FUZZ_NAMES)

deps:
	@scripts/deps.sh

run: deps
	@$(MAKE) --no-print-directory run-inner

run-inner: all
	@if [ -n "$$DUALREG_DATABASE_URL" ]; then url="$$DUALREG_DATABASE_URL"; \
	  echo "dualreg: using DUALREG_DATABASE_URL"; \
	else url=$$(scripts/pg.sh start var/pg) || exit 1; \
	  echo "dualreg: private PostgreSQL in ./var/pg ($$url); 'make stop' stops it"; fi; \
	export DUALREG_DATABASE_URL="$$url" DUALREG_SQL_DIR="$(CURDIR)/sql" \
	  DUALREG_WEB_DIR="$(CURDIR)/web"; \
	$(BUILD)/dualregctl -c $(RUN_CONFIG) migrate || exit 1; \
	mkdir -p var; \
	(umask 077; $(BUILD)/dualregctl -c $(RUN_CONFIG) seed --demo > var/demo.env) || exit 1; \
	scripts/examples.sh var/demo.env; \
	exec $(BUILD)/dualregd -c $(RUN_CONFIG)

stop:
	@scripts/pg.sh stop var/pg

BENCH_BINS = $(BUILD)/loadgen $(BUILD)/evhttp_ceiling $(BUILD)/upsert_ceiling $(BUILD)/curl_ceiling \
             $(BUILD)/pointread_ceiling $(BUILD)/waiters

$(BUILD)/loadgen: $(BUILD)/bench/loadgen.o
	@$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)
$(BUILD)/evhttp_ceiling: $(BUILD)/bench/evhttp_ceiling.o
	@$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) $(shell pkg-config --libs libevent_openssl)
$(BUILD)/curl_ceiling: $(BUILD)/bench/curl_ceiling.o
	@$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)
$(BUILD)/upsert_ceiling: $(BUILD)/bench/upsert_ceiling.o
	@$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) -lpthread
$(BUILD)/pointread_ceiling: $(BUILD)/bench/pointread_ceiling.o
	@$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) -lpthread
$(BUILD)/waiters: $(BUILD)/bench/waiters.o
	@$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

bench: deps
	@$(MAKE) --no-print-directory bench-inner

bench-inner: all $(BENCH_BINS)
	@bench/run.sh $(BUILD)

# make soak: a mixed load for SOAK_SECONDS (default 600) and dualregd's memory over it.
soak: deps
	@$(MAKE) --no-print-directory soak-inner

soak-inner: all $(BENCH_BINS)
	@bench/soak.sh $(BUILD)

check: deps
	@$(MAKE) --no-print-directory check-inner

check-inner: all $(BUILD)/check_dualreg $(REPLAY_BINS) lint-openapi
	@scripts/check.sh $(BUILD) $(if $(filter 1,$(SAN)),san,)

# The README's pictures of the web app: the browser tests' screenshots of the states
# named in docs/screenshots/LIST, copied into docs/screenshots/.
screenshots: deps
	@$(MAKE) --no-print-directory all $(BUILD)/check_dualreg $(LINT_STAMP)
	@rm -rf $(BUILD)/screenshots && mkdir -p $(BUILD)/screenshots
	@DUALREG_SCREENSHOTS_DIR=$(CURDIR)/$(BUILD)/screenshots CK_RUN_SUITE=browser \
	  CK_RUN_CASE=pages scripts/check.sh $(BUILD)
	@while read -r f; do case $$f in ''|'#'*) ;; *) cp $(BUILD)/screenshots/$$f docs/screenshots/ || exit 1;; esac; \
	  done < docs/screenshots/LIST; echo "docs/screenshots/ updated"

# The linter is a development tool from npm, pinned by package-lock.json; npm ci runs
# again only when the lock file changes. Output is shown only when the lint fails.
LINT_STAMP = node_modules/.dualreg-lint-installed
$(LINT_STAMP): package.json package-lock.json
	@command -v npm >/dev/null || { echo "dualreg: lint-openapi needs Node.js >= 20.19 and npm" >&2; exit 1; }
	@echo "  NPM ci (OpenAPI linter)"
	@npm ci --no-audit --no-fund --ignore-scripts --loglevel=error >/dev/null
	@touch $@

lint-openapi: $(LINT_STAMP)
	@echo "  LINT api/openapi.yaml"
	@out=$$(REDOCLY_TELEMETRY=off node_modules/.bin/redocly lint --config redocly.yaml \
	  api/openapi.yaml 2>&1) || { printf '%s\n' "$$out" >&2; exit 1; }

install: all
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(DATADIR)/sql/schema \
	  $(DESTDIR)$(DATADIR)/sql/functions \
	  $(DESTDIR)$(SYSCONFDIR)/dualreg $(DESTDIR)$(UNITDIR) $(DESTDIR)$(MANDIR)/man8
	install -m 755 $(BUILD)/dualregd $(DESTDIR)$(SBINDIR)/dualregd
	install -m 755 $(BUILD)/dualregctl $(DESTDIR)$(BINDIR)/dualregctl
	@# Files of the layout before sql/schema and sql/functions would only mislead.
	rm -f $(DESTDIR)$(DATADIR)/sql/[0-9][0-9][0-9]_*.sql $(DESTDIR)$(DATADIR)/sql/functions/*.sql
	install -m 644 $(MIGRATIONS) $(DESTDIR)$(DATADIR)/sql/schema/
	install -m 644 $(FUNCTIONS) $(DESTDIR)$(DATADIR)/sql/functions/
	@# The web app: what a release does not ship any more must not be served.
	rm -rf $(DESTDIR)$(DATADIR)/web
	install -d $(DESTDIR)$(DATADIR)/web/js $(DESTDIR)$(DATADIR)/web/css
	install -m 644 $(WEB_FILES) $(DESTDIR)$(DATADIR)/web/
	install -m 644 $(WEB_JS) $(DESTDIR)$(DATADIR)/web/js/
	install -m 644 $(WEB_CSS) $(DESTDIR)$(DATADIR)/web/css/
	install -m 644 config/dualreg.conf.example $(DESTDIR)$(SYSCONFDIR)/dualreg/dualreg.conf.example
	sed 's|@SBINDIR@|$(SBINDIR)|g' systemd/dualregd.service > $(DESTDIR)$(UNITDIR)/dualregd.service
	chmod 644 $(DESTDIR)$(UNITDIR)/dualregd.service
	install -m 644 man/dualregd.8 man/dualregctl.8 $(DESTDIR)$(MANDIR)/man8/

clean:
	rm -rf build
