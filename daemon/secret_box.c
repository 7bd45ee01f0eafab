/*
 * secret_box: AES-256-GCM sealing of stored secrets with OpenSSL EVP, the key file and
 * the daemon's installed keyring (see secret_box.h).
 */
#include "dualreg/secret_box.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dualreg/xalloc.h"

#define NONCE_BYTES 12
#define TAG_BYTES 16
#define KEY_LINE_LEN 44    /* base64 of 32 bytes */
#define VALUE_MAX 65536    /* bytes of a value to seal */

struct secret_box {
	size_t n;
	unsigned char keys[SECRET_BOX_MAX_KEYS][SECRET_BOX_KEY_BYTES];
	char ids[SECRET_BOX_MAX_KEYS][SECRET_BOX_ID_LEN + 1];
};

static struct secret_box *installed;

void secret_box_key_id_of(const unsigned char key[SECRET_BOX_KEY_BYTES],
			  char id[SECRET_BOX_ID_LEN + 1])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	EVP_Digest(key, SECRET_BOX_KEY_BYTES, md, &len, EVP_sha256(), NULL);
	for (int i = 0; i < SECRET_BOX_ID_LEN / 2; i++)
		snprintf(id + 2 * i, 3, "%02x", md[i]);
	id[SECRET_BOX_ID_LEN] = '\0';
}

struct secret_box *secret_box_from_keys(const unsigned char (*keys)[SECRET_BOX_KEY_BYTES],
					size_t n)
{
	if (n == 0 || n > SECRET_BOX_MAX_KEYS)
		return NULL;
	struct secret_box *b = xcalloc(1, sizeof *b);
	b->n = n;
	for (size_t i = 0; i < n; i++) {
		memcpy(b->keys[i], keys[i], SECRET_BOX_KEY_BYTES);
		secret_box_key_id_of(b->keys[i], b->ids[i]);
	}
	return b;
}

void secret_box_free(struct secret_box *b)
{
	if (b == NULL)
		return;
	OPENSSL_cleanse(b, sizeof *b);
	free(b);
}

size_t secret_box_key_count(const struct secret_box *b)
{
	return b != NULL ? b->n : 0;
}

const char *secret_box_key_id(const struct secret_box *b, size_t i)
{
	return b != NULL && i < b->n ? b->ids[i] : NULL;
}

bool secret_box_has_key(const struct secret_box *b, const char *id)
{
	for (size_t i = 0; b != NULL && i < b->n; i++)
		if (strcmp(b->ids[i], id) == 0)
			return true;
	return false;
}

static bool is_b64(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '+' || c == '/';
}

/* Decodes canonical padded base64 of len characters into out (room for len / 4 * 3);
 * the number of bytes, or -1 if it is not such base64. */
static int b64_decode(const char *in, size_t len, unsigned char *out)
{
	if (len == 0 || len % 4 != 0 || len > INT_MAX)
		return -1;
	size_t pad = in[len - 1] == '=' ? (in[len - 2] == '=' ? 2 : 1) : 0;
	for (size_t i = 0; i < len - pad; i++)
		if (!is_b64(in[i]))
			return -1;
	int n = EVP_DecodeBlock(out, (const unsigned char *)in, (int)len);
	if (n < 0)
		return -1;
	return n - (int)pad;
}

int secret_box_key_new(unsigned char key[SECRET_BOX_KEY_BYTES], char line[48])
{
	if (RAND_bytes(key, SECRET_BOX_KEY_BYTES) != 1)
		return -1;
	EVP_EncodeBlock((unsigned char *)line, key, SECRET_BOX_KEY_BYTES);
	return 0;
}

/* One key line (trimmed) into key; false if it is not base64 of exactly 32 bytes. */
static bool parse_key(const char *line, size_t len, unsigned char key[SECRET_BOX_KEY_BYTES])
{
	unsigned char raw[KEY_LINE_LEN];
	char again[KEY_LINE_LEN + 4];
	if (len != KEY_LINE_LEN || b64_decode(line, len, raw) != SECRET_BOX_KEY_BYTES)
		return false;
	/* Canonical only: the line must be exactly what encoding the bytes gives. */
	EVP_EncodeBlock((unsigned char *)again, raw, SECRET_BOX_KEY_BYTES);
	bool ok = memcmp(again, line, KEY_LINE_LEN) == 0;
	if (ok)
		memcpy(key, raw, SECRET_BOX_KEY_BYTES);
	OPENSSL_cleanse(raw, sizeof raw);
	return ok;
}

/* Parses the text of a key file into b; 0, or -1 with why in err. */
static int parse_file(struct secret_box *b, const char *path, char *text, char *err,
		      size_t errlen)
{
	int lineno = 0;
	for (char *p = text, *line; (line = strsep(&p, "\n")) != NULL;) {
		lineno++;
		size_t len = strlen(line);
		while (len > 0 && strchr(" \t\r", line[len - 1]) != NULL)
			len--;
		while (len > 0 && (*line == ' ' || *line == '\t')) {
			line++;
			len--;
		}
		if (len == 0 || line[0] == '#')
			continue;
		if (b->n == SECRET_BOX_MAX_KEYS) {
			snprintf(err, errlen, "%s:%d: more than %d keys", path, lineno,
				 SECRET_BOX_MAX_KEYS);
			return -1;
		}
		if (!parse_key(line, len, b->keys[b->n])) {
			snprintf(err, errlen,
				 "%s:%d: not a key (a key is base64 of 32 bytes: 44 characters, "
				 "as `dualregctl secrets new-key-file` writes)",
				 path, lineno);
			return -1;
		}
		secret_box_key_id_of(b->keys[b->n], b->ids[b->n]);
		for (size_t i = 0; i < b->n; i++) {
			if (strcmp(b->ids[i], b->ids[b->n]) == 0) {
				snprintf(err, errlen, "%s:%d: key %s is in the file twice", path,
					 lineno, b->ids[i]);
				return -1;
			}
		}
		b->n++;
	}
	if (b->n == 0) {
		snprintf(err, errlen, "%s: no key in the file", path);
		return -1;
	}
	return 0;
}

struct secret_box *secret_box_load(const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK); /* a FIFO never blocks */
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	struct stat st;
	if (fstat(fd, &st) != 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		close(fd);
		return NULL;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		close(fd);
		return NULL;
	}
	if ((st.st_mode & 077) != 0) {
		snprintf(err, errlen,
			 "%s: mode %04o lets group or others read or change the keys; "
			 "make it readable by its owner only (chmod 600 %s)",
			 path, (unsigned)(st.st_mode & 07777), path);
		close(fd);
		return NULL;
	}
	if (st.st_size > SECRET_BOX_FILE_MAX) {
		snprintf(err, errlen, "%s: larger than %d bytes", path, SECRET_BOX_FILE_MAX);
		close(fd);
		return NULL;
	}
	char *text = xmalloc(SECRET_BOX_FILE_MAX + 2);
	size_t len = 0;
	int read_errno = 0;
	for (;;) {
		ssize_t n = read(fd, text + len, SECRET_BOX_FILE_MAX + 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			read_errno = errno;
			break;
		}
		len += (size_t)n;
		if (n == 0 || len > SECRET_BOX_FILE_MAX)
			break;
	}
	close(fd);
	struct secret_box *b = NULL;
	if (read_errno != 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(read_errno));
	} else if (len > SECRET_BOX_FILE_MAX) {
		snprintf(err, errlen, "%s: larger than %d bytes", path, SECRET_BOX_FILE_MAX);
	} else if (memchr(text, '\0', len) != NULL) {
		snprintf(err, errlen, "%s: not a text file", path);
	} else {
		text[len] = '\0';
		b = xcalloc(1, sizeof *b);
		if (parse_file(b, path, text, err, errlen) != 0) {
			secret_box_free(b);
			b = NULL;
		}
	}
	OPENSSL_cleanse(text, SECRET_BOX_FILE_MAX + 2);
	free(text);
	return b;
}

bool secret_box_is_sealed(const char *text, char *id)
{
	size_t plen = strlen(SECRET_BOX_PREFIX);
	if (strncmp(text, SECRET_BOX_PREFIX, plen) != 0)
		return false;
	const char *k = text + plen;
	for (int i = 0; i < SECRET_BOX_ID_LEN; i++)
		if (!((k[i] >= '0' && k[i] <= '9') || (k[i] >= 'a' && k[i] <= 'f')))
			return false;
	if (k[SECRET_BOX_ID_LEN] != ':')
		return false;
	if (id != NULL) {
		memcpy(id, k, SECRET_BOX_ID_LEN);
		id[SECRET_BOX_ID_LEN] = '\0';
	}
	return true;
}

char *secret_box_seal(const struct secret_box *b, const char *plain, const char *aad)
{
	if (b == NULL)
		return xstrdup(plain);
	size_t plen = strlen(plain);
	if (plen > VALUE_MAX)
		return NULL;
	size_t rawlen = NONCE_BYTES + plen + TAG_BYTES;
	unsigned char *raw = xmalloc(rawlen);
	unsigned char *nonce = raw, *ct = raw + NONCE_BYTES, *tag = raw + NONCE_BYTES + plen;
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int n = 0, fin = 0;
	bool ok = ctx != NULL && RAND_bytes(nonce, NONCE_BYTES) == 1 &&
		  EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
		  EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_BYTES, NULL) == 1 &&
		  EVP_EncryptInit_ex(ctx, NULL, NULL, b->keys[0], nonce) == 1 &&
		  EVP_EncryptUpdate(ctx, NULL, &n, (const unsigned char *)aad, (int)strlen(aad)) ==
		      1 &&
		  EVP_EncryptUpdate(ctx, ct, &n, (const unsigned char *)plain, (int)plen) == 1 &&
		  EVP_EncryptFinal_ex(ctx, ct + n, &fin) == 1 &&
		  EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_BYTES, tag) == 1;
	EVP_CIPHER_CTX_free(ctx);
	char *out = NULL;
	if (ok) {
		size_t head = strlen(SECRET_BOX_PREFIX) + SECRET_BOX_ID_LEN + 1;
		out = xmalloc(head + (rawlen + 2) / 3 * 4 + 1);
		snprintf(out, head + 1, SECRET_BOX_PREFIX "%s:", b->ids[0]);
		EVP_EncodeBlock((unsigned char *)out + head, raw, (int)rawlen);
	}
	free(raw);
	return out;
}

char *secret_box_open(const struct secret_box *b, const char *stored, const char *aad,
		      char *err, size_t errlen)
{
	char id[SECRET_BOX_ID_LEN + 1];
	if (!secret_box_is_sealed(stored, id))
		return xstrdup(stored); /* stored before encryption was configured */
	size_t k = 0;
	while (b != NULL && k < b->n && strcmp(b->ids[k], id) != 0)
		k++;
	if (b == NULL) {
		snprintf(err, errlen, "the value is encrypted with key %s and no [secrets] key_file "
				      "is configured", id);
		return NULL;
	}
	if (k == b->n) {
		snprintf(err, errlen, "the value is encrypted with key %s, which the key file "
				      "does not hold", id);
		return NULL;
	}
	const char *b64 = stored + strlen(SECRET_BOX_PREFIX) + SECRET_BOX_ID_LEN + 1;
	size_t b64len = strlen(b64);
	if (b64len > (size_t)VALUE_MAX * 2) {
		snprintf(err, errlen, "the encrypted value is too long");
		return NULL;
	}
	unsigned char *raw = xmalloc(b64len / 4 * 3 + 3);
	int rawlen = b64_decode(b64, b64len, raw);
	if (rawlen < NONCE_BYTES + TAG_BYTES) {
		free(raw);
		snprintf(err, errlen, "the encrypted value is malformed");
		return NULL;
	}
	size_t ctlen = (size_t)rawlen - NONCE_BYTES - TAG_BYTES;
	unsigned char *nonce = raw, *ct = raw + NONCE_BYTES, *tag = raw + NONCE_BYTES + ctlen;
	char *out = xmalloc(ctlen + 1);
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int n = 0, fin = 0;
	bool ok = ctx != NULL && EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
		  EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_BYTES, NULL) == 1 &&
		  EVP_DecryptInit_ex(ctx, NULL, NULL, b->keys[k], nonce) == 1 &&
		  EVP_DecryptUpdate(ctx, NULL, &n, (const unsigned char *)aad, (int)strlen(aad)) ==
		      1 &&
		  EVP_DecryptUpdate(ctx, (unsigned char *)out, &n, ct, (int)ctlen) == 1 &&
		  EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_BYTES, tag) == 1 &&
		  EVP_DecryptFinal_ex(ctx, (unsigned char *)out + n, &fin) == 1;
	EVP_CIPHER_CTX_free(ctx);
	free(raw);
	if (!ok || memchr(out, '\0', ctlen) != NULL) {
		OPENSSL_cleanse(out, ctlen + 1);
		free(out);
		snprintf(err, errlen, "the value encrypted with key %s does not decrypt: altered, or "
				      "copied from another row",
			 id);
		return NULL;
	}
	out[ctlen] = '\0';
	return out;
}

void secret_box_value_free(char *v)
{
	if (v == NULL)
		return;
	OPENSSL_cleanse(v, strlen(v));
	free(v);
}

void secret_box_install(struct secret_box *b)
{
	if (installed == b)
		return;
	secret_box_free(installed);
	installed = b;
}

const struct secret_box *secret_box_installed(void)
{
	return installed;
}

void secret_box_aad_subscription(const char *id, char out[SECRET_BOX_AAD_MAX])
{
	snprintf(out, SECRET_BOX_AAD_MAX, "subscription:%.40s", id);
}

void secret_box_aad_school(const char *urn, char out[SECRET_BOX_AAD_MAX])
{
	snprintf(out, SECRET_BOX_AAD_MAX, "school:%.40s", urn);
}

void secret_box_aad_staff(const char *user_id, char out[SECRET_BOX_AAD_MAX])
{
	snprintf(out, SECRET_BOX_AAD_MAX, "staff:%.40s", user_id);
}
