/*
 * secret_box: encryption at rest of the secrets dualreg keeps for its own outbound
 * requests, webhook signing secrets (subscriptions.secret, previous_secret) and feed
 * bearer tokens (schools.pull_token). It owns the key file format, the keyring read
 * from it, the sealed text form, and the daemon's installed keyring. The database
 * never sees a key: values are sealed and opened here, in the daemon and in dualregctl.
 *
 * Key file ([secrets] key_file): one key per line, base64 of 32 random bytes; blank
 * lines and lines starting with '#' are ignored. The first key is the current key,
 * which seals new values; every key opens values. A key's id is the first 8 hex digits
 * of the SHA-256 of its bytes. The file must be a regular file that neither group nor
 * others may read or write (mode 0600 or 0400), at most SECRET_BOX_FILE_MAX bytes.
 *
 * Sealed form: "v1:<key id>:<base64 of nonce (12) | ciphertext | tag (16)>",
 * AES-256-GCM with a random nonce, and the value's row as additional data (for
 * example "subscription:42", "school:100001"), so a value copied into another row
 * does not open. Any other text is a value stored before encryption was configured
 * (plaintext); it opens as it is, and `dualregctl secrets rotate-key` seals it.
 */
#ifndef DUALREG_SECRET_BOX_H
#define DUALREG_SECRET_BOX_H

#include <stdbool.h>
#include <stddef.h>

#define SECRET_BOX_KEY_BYTES 32
#define SECRET_BOX_ID_LEN 8       /* hex digits of a key id */
#define SECRET_BOX_MAX_KEYS 16    /* keys in one file */
#define SECRET_BOX_FILE_MAX 65536 /* bytes of a key file */
#define SECRET_BOX_AAD_MAX 64     /* bytes of a row's additional data, with its NUL */
#define SECRET_BOX_PREFIX "v1:"

struct secret_box;

/*
 * Reads a key file into a new keyring. NULL, with why in err (naming the file and the
 * line), if the file cannot be read, may be read or written by group or others, is
 * too large, or holds a malformed or repeated key or none at all.
 */
struct secret_box *secret_box_load(const char *path, char *err, size_t errlen);
/* A keyring of the given keys (n >= 1, the first current): for tests and new files. */
struct secret_box *secret_box_from_keys(const unsigned char (*keys)[SECRET_BOX_KEY_BYTES],
					size_t n);
/* Frees a keyring and wipes its keys. Accepts NULL. */
void secret_box_free(struct secret_box *b);

size_t secret_box_key_count(const struct secret_box *b);
/* Key i's id (8 hex digits); key 0 is the current key. */
const char *secret_box_key_id(const struct secret_box *b, size_t i);
/* True if the keyring holds a key with this id. */
bool secret_box_has_key(const struct secret_box *b, const char *id);

/* A new random key and its line in a key file (base64, 44 characters + NUL). 0, or -1
 * when no randomness is available. */
int secret_box_key_new(unsigned char key[SECRET_BOX_KEY_BYTES], char line[48]);
/* The id of a key (SECRET_BOX_ID_LEN hex digits + NUL). */
void secret_box_key_id_of(const unsigned char key[SECRET_BOX_KEY_BYTES],
			  char id[SECRET_BOX_ID_LEN + 1]);

/* True if text has the sealed form's prefix and key id ("v1:xxxxxxxx:"); its key id
 * (8 hex digits + NUL) into id when id is not NULL. */
bool secret_box_is_sealed(const char *text, char *id);

/*
 * Seals plain for the row aad with the current key; returns the sealed text (malloc'd).
 * With b NULL (no key file) returns a copy of plain. NULL only if no randomness is
 * available or the cipher fails.
 */
char *secret_box_seal(const struct secret_box *b, const char *plain, const char *aad);
/*
 * Opens a stored value of the row aad: a sealed value is decrypted with the key its id
 * names, plaintext is returned as it is (malloc'd). NULL, with why in err, if it is
 * sealed with a key the keyring lacks (or there is no keyring), or does not decrypt:
 * another key with the same id, an altered value, or another row's value.
 */
char *secret_box_open(const struct secret_box *b, const char *stored, const char *aad,
		      char *err, size_t errlen);
/* Frees an opened or sealed value, wiping it first. Accepts NULL. */
void secret_box_value_free(char *v);

/*
 * The daemon's keyring: set at start and on every reload (SIGHUP) from [secrets]
 * key_file, read by the API handlers, the webhook dispatcher and the feed reader at
 * the moment they seal or open a value (never kept across a callback). Installing
 * frees the previous keyring; NULL means no key file (values are stored unencrypted).
 */
void secret_box_install(struct secret_box *b);
const struct secret_box *secret_box_installed(void);

/* The additional data of a row's value, into out (SECRET_BOX_AAD_MAX bytes). */
void secret_box_aad_subscription(const char *id, char out[SECRET_BOX_AAD_MAX]);
void secret_box_aad_school(const char *urn, char out[SECRET_BOX_AAD_MAX]);
void secret_box_aad_staff(const char *user_id, char out[SECRET_BOX_AAD_MAX]); /* TOTP */

#endif
