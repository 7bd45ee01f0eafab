/*
 * web_static: the staff web app's files (web/ in the source tree, $(DATADIR)/web once
 * installed, DUALREG_WEB_DIR to override), served at /app/.
 *
 * The files are read into memory once, at start (web_static_load): the top directory
 * and its js/ and css/ subdirectories, regular files only (a symbolic link is not
 * followed), names not starting with ".", of the types below, at most WEB_MAX_FILES
 * files and WEB_MAX_TOTAL bytes in all, each valid UTF-8 text without NUL. A request
 * never touches the disk, and only a loaded file can be answered: a path names an entry
 * of the loaded set or nothing, so no path can reach outside it.
 *
 *  GET /, GET /app      302 to /app/
 *  GET /app/            index.html
 *  GET /app/{page}      a top-level file; a name without "." is a page: setup -> setup.html
 *  GET /app/js/{file}   a script; GET /app/css/{file} a style sheet
 *
 * Each file has a strong ETag (part of its SHA-256), answered 304 on a matching
 * If-None-Match, and Cache-Control: no-cache, so a browser keeps it but asks every time
 * and sees a new release at once. Every answer here carries the security headers
 * (web_security_headers): a Content-Security-Policy that allows only this origin's
 * scripts and style sheets and no inline script or style, no framing, no referrer, no
 * MIME sniffing. An unknown file is a 404 problem.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dualreg/log.h"
#include "dualreg/utf8.h"
#include "dualreg/xalloc.h"
#include "handlers.h"

#ifndef DUALREG_WEBDIR
#define DUALREG_WEBDIR "/usr/local/share/dualreg/web"
#endif

#define WEB_ETAG_LEN 34 /* '"' + 32 hex digits + '"' */

struct web_file {
	char path[WEB_PATH_MAX + 1]; /* relative: "index.html", "js/app.js" */
	const char *ctype;
	char *body; /* NUL-terminated */
	size_t len;
	char etag[WEB_ETAG_LEN + 1];
};

static struct web_file *files;
static size_t nfiles;
static size_t total_bytes;

static const struct {
	const char *ext;
	const char *ctype;
} types[] = {
    {".html", "text/html; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".mjs", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".svg", "image/svg+xml"},
    {".txt", "text/plain; charset=utf-8"},
};

static const char *type_of(const char *name)
{
	const char *dot = strrchr(name, '.');
	if (dot == NULL)
		return NULL;
	for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
		if (strcmp(dot, types[i].ext) == 0)
			return types[i].ctype;
	return NULL;
}

void web_security_headers(struct api_req *r)
{
	api_set_header(r, "Content-Security-Policy", WEB_CSP);
	api_set_header(r, "X-Content-Type-Options", "nosniff");
	api_set_header(r, "Referrer-Policy", "no-referrer");
	api_set_header(r, "X-Frame-Options", "DENY");
}

static void make_etag(const char *body, size_t len, char out[WEB_ETAG_LEN + 1])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	EVP_Digest(body, len, md, &mdlen, EVP_sha256(), NULL);
	out[0] = '"';
	for (unsigned i = 0; i < 16; i++)
		snprintf(out + 1 + 2 * i, 3, "%02x", md[i]);
	out[WEB_ETAG_LEN - 1] = '"';
	out[WEB_ETAG_LEN] = '\0';
}

/* Reads the regular file fd (size bytes by fstat) as one more loaded file. */
static int load_file(int fd, const char *rel, const char *ctype, char *err, size_t errlen)
{
	struct stat st;
	if (fstat(fd, &st) != 0) {
		snprintf(err, errlen, "%s: %s", rel, strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode))
		return 0;
	if (nfiles >= WEB_MAX_FILES) {
		snprintf(err, errlen, "more than %d files", WEB_MAX_FILES);
		return -1;
	}
	if ((unsigned long long)st.st_size > WEB_MAX_TOTAL - total_bytes) {
		snprintf(err, errlen, "%s: the files come to more than %d bytes", rel,
			 WEB_MAX_TOTAL);
		return -1;
	}
	size_t size = (size_t)st.st_size, got = 0;
	char *body = xmalloc(size + 1);
	while (got < size) {
		ssize_t n = read(fd, body + got, size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			snprintf(err, errlen, "%s: %s", rel, n < 0 ? strerror(errno) : "shorter than its size");
			free(body);
			return -1;
		}
		got += (size_t)n;
	}
	body[size] = '\0';
	if (memchr(body, '\0', size) != NULL || utf8_length(body) == UTF8_INVALID) {
		snprintf(err, errlen, "%s: not UTF-8 text (a NUL byte or a malformed sequence)", rel);
		free(body);
		return -1;
	}
	files = xrealloc(files, (nfiles + 1) * sizeof *files);
	struct web_file *f = &files[nfiles++];
	snprintf(f->path, sizeof f->path, "%s", rel);
	f->ctype = ctype;
	f->body = body;
	f->len = size;
	make_etag(body, size, f->etag);
	total_bytes += size;
	return 0;
}

/* Loads the files of dir (prefix "" for the top, "js/" or "css/"); with subdirs, also
 * those two subdirectories. */
static int load_dir(int dirfd, const char *prefix, bool subdirs, char *err, size_t errlen)
{
	DIR *d = fdopendir(dirfd);
	if (d == NULL) {
		snprintf(err, errlen, "%s: %s", prefix[0] ? prefix : ".", strerror(errno));
		close(dirfd);
		return -1;
	}
	int rc = 0;
	struct dirent *e;
	while (rc == 0 && (errno = 0, e = readdir(d)) != NULL) {
		const char *name = e->d_name;
		if (name[0] == '.')
			continue;
		char rel[WEB_PATH_MAX + 1];
		int n = snprintf(rel, sizeof rel, "%s%s", prefix, name);
		if (n < 0 || (size_t)n >= sizeof rel) {
			log_warn("web app: name too long, not served", "name=\"%s\"", name);
			continue;
		}
		struct stat st;
		if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
			snprintf(err, errlen, "%s: %s", rel, strerror(errno));
			rc = -1;
			break;
		}
		if (S_ISDIR(st.st_mode)) {
			if (!subdirs || (strcmp(name, "js") != 0 && strcmp(name, "css") != 0))
				continue;
			int sub = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub < 0) {
				snprintf(err, errlen, "%s: %s", rel, strerror(errno));
				rc = -1;
			} else {
				rc = load_dir(sub, name[0] == 'j' ? "js/" : "css/", false, err,
					      errlen);
			}
			continue;
		}
		const char *ctype = type_of(name);
		if (!S_ISREG(st.st_mode) || ctype == NULL) {
			log_debug("web app: not served (not a regular file of a served type)",
				  "file=\"%s\"", rel);
			continue;
		}
		int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0) {
			snprintf(err, errlen, "%s: %s", rel, strerror(errno));
			rc = -1;
			break;
		}
		rc = load_file(fd, rel, ctype, err, errlen);
		close(fd);
	}
	if (rc == 0 && errno != 0) {
		snprintf(err, errlen, "%s: %s", prefix[0] ? prefix : ".", strerror(errno));
		rc = -1;
	}
	closedir(d);
	return rc;
}

int web_static_load(const char *dir, char *err, size_t errlen)
{
	web_static_free();
	if (dir == NULL)
		dir = getenv("DUALREG_WEB_DIR");
	if (dir == NULL || dir[0] == '\0')
		dir = DUALREG_WEBDIR;
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT) {
			log_warn("the web app's files are not there: /app/ answers 404",
				 "dir=\"%s\"", dir);
			return 0;
		}
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		return -1;
	}
	char why[400];
	if (load_dir(fd, "", true, why, sizeof why) != 0) {
		snprintf(err, errlen, "web app files in %s: %s", dir, why);
		web_static_free();
		return -1;
	}
	log_info("web app files loaded", "dir=\"%s\" files=%zu bytes=%zu", dir, nfiles,
		 total_bytes);
	return 0;
}

void web_static_free(void)
{
	for (size_t i = 0; i < nfiles; i++)
		free(files[i].body);
	free(files);
	files = NULL;
	nfiles = 0;
	total_bytes = 0;
}

size_t web_static_count(void)
{
	return nfiles;
}

/* The loaded file of relative path rel, or NULL. */
static const struct web_file *find(const char *rel)
{
	for (size_t i = 0; i < nfiles; i++)
		if (strcmp(files[i].path, rel) == 0)
			return &files[i];
	return NULL;
}

bool api_etag_matches(const char *header, const char *etag)
{
	const char *p = header;
	size_t elen = strlen(etag);
	while (*p != '\0') {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (*p == '*')
			return true;
		if (strncmp(p, "W/", 2) == 0)
			p += 2;
		size_t len = strcspn(p, ",");
		while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
			len--;
		if (len == elen && strncmp(p, etag, elen) == 0)
			return true;
		p += strcspn(p, ",");
	}
	return false;
}

/* Answers the file prefix + name: name is one decoded path segment; without a "." it
 * names a page (name + ".html"). */
static void serve(struct api_req *r, const char *prefix, const char *name)
{
	web_security_headers(r);
	char rel[WEB_PATH_MAX + 1];
	const struct web_file *f = NULL;
	/* A segment holding "/" (an escaped %2F) names nothing: one path, one file. */
	if (strchr(name, '/') == NULL) {
		int n = snprintf(rel, sizeof rel, "%s%s%s", prefix, name,
				 strchr(name, '.') == NULL ? ".html" : "");
		if (n > 0 && (size_t)n < sizeof rel)
			f = find(rel);
	}
	if (f == NULL) {
		api_reply_error(r, 404, "not-found", "no such file in the web app");
		return;
	}
	api_set_header(r, "ETag", f->etag);
	api_set_header(r, "Cache-Control", "no-cache");
	const char *inm = api_header(r, "If-None-Match");
	if (inm != NULL && api_etag_matches(inm, f->etag)) {
		api_reply_raw(r, 304, NULL, NULL);
		return;
	}
	api_reply_raw(r, 200, f->ctype, f->body);
}

void h_web_redirect(struct api_req *r)
{
	web_security_headers(r);
	api_set_header(r, "Location", "/app/");
	api_reply_raw(r, 302, NULL, NULL);
}

void h_web_index(struct api_req *r)
{
	serve(r, "", "index.html");
}

void h_web_page(struct api_req *r)
{
	serve(r, "", r->params.value[0]);
}

void h_web_script(struct api_req *r)
{
	serve(r, "js/", r->params.value[0]);
}

void h_web_style(struct api_req *r)
{
	serve(r, "css/", r->params.value[0]);
}
