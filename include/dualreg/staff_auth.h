/*
 * staff_auth: the credentials of staff accounts of the web app (sql/schema/022_staff.sql),
 * for the daemon and dualregctl alike. Owns password hashing and the password policy,
 * TOTP secrets, codes and their otpauth:// URI and QR code, recovery codes, and the
 * random tokens of set-up links and sessions. Nothing here touches the database.
 *
 * Passwords: Argon2id (libargon2), t = 2 passes, m = 19 MiB, p = 1 lane, 16-byte random
 * salt, 32-byte hash, kept as the encoded string ("$argon2id$v=19$m=19456,t=2,p=1$...").
 * One hash or verify takes about 50-65 ms of one core (measured on a 2-core Intel Xeon
 * server) and 19 MiB of memory: both BLOCK, so the daemon calls them through workers.h,
 * never on the event loop; with the pool's 2 threads a 2-core server verifies about 30
 * passwords a second. A verify runs with the parameters the
 * encoded string names, so hashes made with other parameters keep verifying
 * (staff_password_needs_rehash says when to store a new one).
 *
 * TOTP: RFC 6238 through liboath: HMAC-SHA-1, 30-second steps from the Unix epoch, 6
 * digits, 20-byte secrets written in base32 (32 characters, no padding). A code is
 * accepted for the current step and one step either side, and only for a step later
 * than the last accepted one, so that no code is accepted twice.
 *
 * Thread safety: every function may be called from any thread at once.
 */
#ifndef DUALREG_STAFF_AUTH_H
#define DUALREG_STAFF_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* ---- passwords ---- */

#define STAFF_PASSWORD_MIN 12  /* characters */
#define STAFF_PASSWORD_MAX 256 /* characters */
#define STAFF_ARGON2_T 2
#define STAFF_ARGON2_M_KIB 19456
#define STAFF_ARGON2_P 1
#define STAFF_HASH_MAX 128 /* bytes of an encoded hash with its NUL (97 are used) */

/*
 * Hashes password into out (STAFF_HASH_MAX bytes) as an Argon2id encoded string.
 * 0, or -1 (out empty) if no randomness is available or the hash fails (out of memory).
 * BLOCKS for tens of milliseconds.
 */
int staff_password_hash(const char *password, char out[STAFF_HASH_MAX])
    __attribute__((warn_unused_result));
/*
 * True if password matches the encoded hash. False for a wrong password and for
 * anything that is not an Argon2id encoded string (NULL included). BLOCKS like hashing.
 */
bool staff_password_verify(const char *encoded, const char *password);
/*
 * An encoded hash, with the parameters above, of a random password nobody knows: verify
 * a password against it for an unknown e-mail address, so that answering takes as long
 * as for a known one. Treat the result as a failure whatever it is.
 */
const char *staff_password_dummy_hash(void);
/* True if encoded was made with other parameters than the above (or is not Argon2id). */
bool staff_password_needs_rehash(const char *encoded);

/* Why a password is refused. */
enum staff_password_problem {
	STAFF_PW_OK = 0,
	STAFF_PW_TOO_SHORT,   /* fewer than STAFF_PASSWORD_MIN characters */
	STAFF_PW_TOO_LONG,    /* more than STAFF_PASSWORD_MAX characters */
	STAFF_PW_NOT_TEXT,    /* not well-formed UTF-8, or holds control characters */
	STAFF_PW_COMMON,      /* a common password, or one with digits or symbols added */
	STAFF_PW_PERSONAL,    /* is or contains the account's e-mail address or name */
};

/*
 * The password policy: STAFF_PASSWORD_MIN to STAFF_PASSWORD_MAX characters of UTF-8
 * text without control characters; not in the bundled list of common passwords
 * (daemon/common_passwords.txt), compared without regard to case, also after removing
 * digits, spaces and symbols from its end; and neither containing the e-mail address,
 * nor its part before the '@' or the name when they are 4 or more characters long,
 * compared without regard to case. email and name may be NULL.
 */
enum staff_password_problem staff_password_check(const char *password, const char *email,
						 const char *name);
/* One sentence for a user on why a password is refused ("" for STAFF_PW_OK). */
const char *staff_password_problem_text(enum staff_password_problem p);
/* True if text (any case) is in the bundled list of common passwords. */
bool staff_password_is_common(const char *text);
/* How many passwords the bundled list holds. */
size_t staff_common_password_count(void);

/* ---- TOTP ---- */

#define STAFF_TOTP_STEP 30
#define STAFF_TOTP_DIGITS 6
#define STAFF_TOTP_SECRET_BYTES 20
#define STAFF_TOTP_SECRET_LEN 32 /* base32 characters of a new secret */
#define STAFF_TOTP_SECRET_MAX 64 /* bytes of a base32 secret buffer, with its NUL */
#define STAFF_TOTP_ISSUER "dualreg"

/* A new random secret, base32 (STAFF_TOTP_SECRET_LEN characters + NUL). 0, or -1 if no
 * randomness is available. */
int staff_totp_secret_new(char out[STAFF_TOTP_SECRET_MAX]) __attribute__((warn_unused_result));
/* The time step of a moment: floor(now / STAFF_TOTP_STEP). */
int64_t staff_totp_step(time_t now);
/* The code of secret (base32) at now, 6 digits + NUL. 0, or -1 for a bad secret. */
int staff_totp_code(const char *secret_b32, time_t now, char out[STAFF_TOTP_DIGITS + 1]);

/* What a code is. */
enum staff_totp_result {
	STAFF_TOTP_VALID = 0,  /* *step is the step it belongs to: store it as the last used */
	STAFF_TOTP_WRONG,      /* not a code of this secret within one step of now */
	STAFF_TOTP_REPLAYED,   /* a code of a step not later than last_step */
	STAFF_TOTP_MALFORMED,  /* not 6 ASCII digits */
	STAFF_TOTP_ERROR,      /* the secret is not base32 */
};

/*
 * Checks code (6 digits) against secret (base32) at now, within one step either side.
 * last_step is the step of the last code accepted for this secret (-1: none); a code
 * of that step or an earlier one is STAFF_TOTP_REPLAYED. On STAFF_TOTP_VALID, *step is
 * set to the matched step.
 */
enum staff_totp_result staff_totp_verify(const char *secret_b32, const char *code, time_t now,
					 int64_t last_step, int64_t *step);

/*
 * The otpauth:// URI an authenticator app reads (malloc'd; NULL when out of memory):
 * otpauth://totp/dualreg:<email>?secret=<secret>&issuer=dualreg&algorithm=SHA1&digits=6
 * &period=30, the e-mail address percent-encoded.
 */
char *staff_totp_uri(const char *secret_b32, const char *email);
/*
 * A QR code of text as an SVG document (malloc'd; NULL if text does not fit a QR code or
 * memory runs out): "<svg ...>" with a white square and one black path, presentation
 * attributes only (no script, no style), a 4-module quiet zone, error correction M.
 */
char *staff_qr_svg(const char *text);

/* ---- recovery codes ---- */

#define STAFF_RECOVERY_CODES 10
#define STAFF_RECOVERY_LEN 14 /* "xxxx-xxxx-xxxx" */
/* The 32 characters of a recovery code: lower-case letters without l and o, digits 2-9. */
#define STAFF_RECOVERY_ALPHABET "abcdefghijkmnpqrstuvwxyz23456789"

/* Ten new codes, distinct, each STAFF_RECOVERY_LEN characters + NUL (60 random bits).
 * 0, or -1 if no randomness is available. */
int staff_recovery_codes_new(char codes[STAFF_RECOVERY_CODES][STAFF_RECOVERY_LEN + 1])
    __attribute__((warn_unused_result));
/*
 * The normal form of a code as a user types it: case, spaces and hyphens do not matter.
 * 0 with out set (STAFF_RECOVERY_LEN + 1 bytes), or -1 if it is not 12 characters of the
 * alphabet.
 */
int staff_recovery_normalise(const char *typed, char out[STAFF_RECOVERY_LEN + 1]);
/* The stored form of a code: hex SHA-256 of its normal form (65 bytes). -1 if typed is
 * not a code (see staff_recovery_normalise). */
int staff_recovery_hash(const char *typed, char out[65]);

/* ---- set-up and session tokens ---- */

#define STAFF_TOKEN_LEN 43 /* base64url of 32 random bytes, no padding */

/* A new token (STAFF_TOKEN_LEN + 1 bytes). 0, or -1 if no randomness is available. */
int staff_token_new(char out[STAFF_TOKEN_LEN + 1]) __attribute__((warn_unused_result));
/* The stored form of a token: hex SHA-256 (65 bytes), as auth_token_hash. */
void staff_token_hash(const char *token, char out[65]);
/* True if text has a token's form (43 base64url characters). */
bool staff_token_well_formed(const char *text);

#endif
