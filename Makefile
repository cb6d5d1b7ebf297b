# dingauth — one GNU Makefile, no autotools.
#   make            build libdingauth.a, cgi-bin/*.fcgi and bin/dingauth
#   make test       build and run the whole suite (ends with "N passed, N failed")
#   make test SAN=1 the same under AddressSanitizer + UBSan
#   make test DB=pg the suite against a private PostgreSQL (tests/run)
#   make run        the demo: lighttpd on 127.0.0.1:8080 with the simulator
#   make bench      benchmarks (report only); DB=pg on PostgreSQL
#   make fuzz       libFuzzer targets for a bounded time (clang)
#   make install    PREFIX=/usr/local, DESTDIR; make uninstall undoes it

# The release: the one place it is set (--version of every program;
# debian/changelog carries the same number).
VERSION  := 0.1.0

PKGS     := fcgi libcurl openssl sqlite3 libcjson libpq
CC       ?= cc
CFLAGS   ?= -O2 -g
WARN     := -std=c11 -Wall -Wextra -Wformat=2 -Wshadow -Wmissing-prototypes \
            -Wstrict-prototypes -Wno-unused-parameter -Werror
CPPFLAGS += -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -Iinclude -Ibuild \
            $(shell pkg-config --cflags $(PKGS))
LDLIBS   += $(shell pkg-config --libs $(PKGS)) -lwslay -lm -pthread
BUILD    := build

ifeq ($(SAN),1)
CFLAGS   := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer \
            -fno-sanitize-recover=undefined
LDFLAGS  += -fsanitize=address,undefined
BUILD    := build-san
endif

# Sanitizer builds keep their executables apart from the normal ones.
ifeq ($(SAN),1)
CGI_DIR  := $(BUILD)/cgi-bin
BIN_DIR  := $(BUILD)/bin
else
CGI_DIR  := cgi-bin
BIN_DIR  := bin
endif

LIB_SRC  := $(sort $(wildcard src/*.c))
LIB_OBJ  := $(LIB_SRC:src/%.c=$(BUILD)/%.o) $(BUILD)/embedded_data.o
LIB      := $(BUILD)/libdingauth.a

CGI_SRC  := $(sort $(wildcard cgi-bin/*.c))
CGI      := $(CGI_SRC:cgi-bin/%.c=$(CGI_DIR)/%.fcgi)
CMD_SRC  := $(sort $(wildcard src/cmd/*.c))
CMD_OBJ  := $(CMD_SRC:src/cmd/%.c=$(BUILD)/cmd/%.o)
CMD      := $(BIN_DIR)/dingauth

TEST_SRC := $(sort $(wildcard tests/unit/*.c))
TEST_BIN := $(TEST_SRC:tests/unit/%.c=$(BUILD)/tests/%)

TOOL_SRC := $(sort $(wildcard tests/tools/*.c))
TOOL_BIN := $(TOOL_SRC:tests/tools/%.c=$(BUILD)/tools/%)
# LD_PRELOAD shims for tests and benchmarks (plain C, no sanitizers).
PRELOAD_SRC := $(sort $(wildcard tests/preload/*.c))
PRELOAD  := $(PRELOAD_SRC:tests/preload/%.c=$(BUILD)/preload/%.so)

SQL      := $(sort $(wildcard sql/*.sql))
SQL_PG   := $(sort $(wildcard sql/pg/*.sql))
# Page templates and the string catalogs (one per language) they read.
TEMPLATES:= $(sort $(wildcard static/*.html static/messages.*))

.PHONY: all test check run bench fuzz clean install-deps install uninstall

all: $(LIB) $(CGI) $(CMD) $(TEST_BIN) $(TOOL_BIN) $(PRELOAD)

$(BUILD)/%.o: src/%.c $(wildcard include/*.h) | $(BUILD)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) -c -o $@ $<

# Rebuilt when the Makefile (and so VERSION) changes.
$(BUILD)/version.o: src/version.c include/version.h Makefile | $(BUILD)
	$(CC) $(CPPFLAGS) -DDINGAUTH_VERSION='"$(VERSION)"' $(CFLAGS) $(WARN) \
	    -c -o $@ $<

# SQL migrations and page templates are compiled into the library.
$(BUILD)/embedded_data.c: $(SQL) $(SQL_PG) $(TEMPLATES) scripts/embed.sh | $(BUILD)
	sh scripts/embed.sh $(SQL) -- $(SQL_PG) -- $(TEMPLATES) > $@.tmp && mv $@.tmp $@

$(BUILD)/embedded_data.o: $(BUILD)/embedded_data.c include/embedded.h
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) -c -o $@ $<

$(LIB): $(LIB_OBJ)
	rm -f $@ && ar rcs $@ $^

$(CGI_DIR)/%.fcgi: cgi-bin/%.c $(LIB) $(wildcard include/*.h)
	@mkdir -p $(CGI_DIR)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

$(BUILD)/cmd/%.o: src/cmd/%.c $(wildcard include/*.h) $(wildcard src/cmd/*.h) | $(BUILD)
	@mkdir -p $(BUILD)/cmd
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) -Isrc/cmd -c -o $@ $<

$(CMD): $(CMD_OBJ) $(LIB)
	@mkdir -p $(BIN_DIR)
	$(CC) $(LDFLAGS) -o $@ $(CMD_OBJ) $(LIB) $(LDLIBS)

$(BUILD)/tests/%: tests/unit/%.c $(wildcard tests/unit/*.h) $(LIB) $(wildcard include/*.h)
	@mkdir -p $(BUILD)/tests
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) -Itests/unit $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

# Small programs the integration tests and benchmarks drive.
$(BUILD)/tools/%: tests/tools/%.c $(LIB) $(wildcard include/*.h)
	@mkdir -p $(BUILD)/tools
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

$(BUILD)/preload/%.so: tests/preload/%.c
	@mkdir -p $(BUILD)/preload
	$(CC) -O2 -g -fPIC -shared $(WARN) -o $@ $<

$(BUILD):
	mkdir -p $(BUILD)

# make install [PREFIX=/usr/local] [DESTDIR=...]; make uninstall removes
# exactly what install put, and the directories of its own left empty.
# The FastCGI programs are run by the web server, not by people: they go
# to a libexec-style directory, $(PREFIX)/lib/dingauth/cgi-bin, with
# fcgi-children (the examples run several copies of a program with it). The
# static files the web server serves (the page templates are compiled
# in) go to $(PREFIX)/share/dingauth/static, linked from
# $(PREFIX)/lib/dingauth/static so the deploy/ examples' one "dingauth
# root" (/usr/local/lib/dingauth) holds both; the examples themselves
# and the systemd units go to $(PREFIX)/share/dingauth/examples.
PREFIX     ?= /usr/local
BINDIR     := $(PREFIX)/bin
LIBEXECDIR := $(PREFIX)/lib/dingauth
DATADIR    := $(PREFIX)/share/dingauth
MANDIR     := $(PREFIX)/share/man
INSTALL    ?= install

CGI_SCRIPTS:= $(sort $(filter-out %.c %.fcgi,$(wildcard cgi-bin/*)))
STATIC     := $(sort $(filter-out $(TEMPLATES),$(wildcard static/*)))
EXAMPLES   := $(sort $(shell find deploy -type f))
MAN5       := $(sort $(wildcard man/*.5))
MAN8       := $(sort $(wildcard man/*.8))

install: $(CGI) $(CMD)
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBEXECDIR)/cgi-bin \
	    $(DESTDIR)$(DATADIR)/static $(DESTDIR)$(DATADIR)/examples \
	    $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8
	$(INSTALL) -m 755 $(CMD) $(DESTDIR)$(BINDIR)/dingauth
	$(INSTALL) -m 755 $(CGI) $(CGI_SCRIPTS) $(DESTDIR)$(LIBEXECDIR)/cgi-bin/
	$(INSTALL) -m 644 $(STATIC) $(DESTDIR)$(DATADIR)/static/
	@if [ -d $(DESTDIR)$(LIBEXECDIR)/static ] && \
	    [ ! -L $(DESTDIR)$(LIBEXECDIR)/static ]; then \
		echo "install: $(DESTDIR)$(LIBEXECDIR)/static is a directory" \
		    "(an older copy): left alone; remove it to get the link"; \
	else \
		echo "ln -sfn ../../share/dingauth/static $(DESTDIR)$(LIBEXECDIR)/static"; \
		ln -sfn ../../share/dingauth/static $(DESTDIR)$(LIBEXECDIR)/static; \
	fi
	for f in $(EXAMPLES:deploy/%=%); do \
		$(INSTALL) -D -m 644 deploy/$$f $(DESTDIR)$(DATADIR)/examples/$$f \
		    || exit 1; \
	done
	$(INSTALL) -m 644 $(MAN5) $(DESTDIR)$(MANDIR)/man5/
	$(INSTALL) -m 644 $(MAN8) $(DESTDIR)$(MANDIR)/man8/

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/dingauth
	rm -f $(CGI_SRC:cgi-bin/%.c=$(DESTDIR)$(LIBEXECDIR)/cgi-bin/%.fcgi) \
	    $(CGI_SCRIPTS:cgi-bin/%=$(DESTDIR)$(LIBEXECDIR)/cgi-bin/%)
	rm -f $(STATIC:static/%=$(DESTDIR)$(DATADIR)/static/%)
	[ ! -L $(DESTDIR)$(LIBEXECDIR)/static ] || \
	    rm -f $(DESTDIR)$(LIBEXECDIR)/static
	rm -f $(EXAMPLES:deploy/%=$(DESTDIR)$(DATADIR)/examples/%)
	rm -f $(MAN5:man/%=$(DESTDIR)$(MANDIR)/man5/%) \
	    $(MAN8:man/%=$(DESTDIR)$(MANDIR)/man8/%)
	[ ! -d $(DESTDIR)$(DATADIR)/examples ] || find \
	    $(DESTDIR)$(DATADIR)/examples -depth -type d -empty -delete
	rmdir $(DESTDIR)$(LIBEXECDIR)/cgi-bin $(DESTDIR)$(LIBEXECDIR) \
	    $(DESTDIR)$(DATADIR)/static $(DESTDIR)$(DATADIR) 2>/dev/null || true

# On a fresh machine the first run installs the Debian packages it needs.
test check:
	sh scripts/install-deps
	$(MAKE) all
	BUILD=$(BUILD) CGI_DIR=$(CGI_DIR) BIN_DIR=$(BIN_DIR) SAN=$(SAN) DB=$(DB) sh tests/run

run:
	sh scripts/install-deps
	$(MAKE) all
	sh scripts/demo

bench: all
	BUILD=$(BUILD) CGI_DIR=$(CGI_DIR) BIN_DIR=$(BIN_DIR) DB=$(DB) sh tests/bench/run

fuzz:
	sh tests/fuzz/run

install-deps:
	sh scripts/install-deps

clean:
	rm -rf build build-san bin/dingauth cgi-bin/*.fcgi
