#!/usr/bin/env bash
# Prints example requests for the daemon `make run` is about to start, using the demo
# made by `dualregctl seed --demo` (its shell assignments are in the file given, e.g.
# var/demo.env): the real keys, URNs and UPNs.
#   scripts/examples.sh [DEMO_ENV_FILE]
set -euo pipefail
addr=${DUALREG_LISTEN:-127.0.0.1:8080}
DEMO_URL="http://$addr"
if [[ -n ${1:-} && -r $1 ]]; then
  # shellcheck disable=SC1090
  . "$1"
fi
url=$DEMO_URL
# The demo's school day: today on a weekday, else the Friday before (marks are refused
# on days without sessions), as dualregctl seed worked it out.
day=${DEMO_DAY:-$(TZ=Europe/London date +%F)}
if [[ $day == "$(TZ=Europe/London date +%F)" ]]; then
  when="today ($day)"
else
  when="on ${DEMO_DAY_NAME:-} $day, the most recent school day"
fi
cat <<TXT

dualregd is starting on $url  (Ctrl-C stops it; 'make stop' stops the database)

  curl -i $url/healthz
  curl -i $url/readyz
TXT
[[ -n ${DEMO_ADMIN_KEY:-} ]] || exit 0
cat <<TXT

Demo keys (new on every 'make run', which revokes the previous ones; paste these
three lines into your shell, then try the requests below):
  ADMIN_KEY='$DEMO_ADMIN_KEY'    # admin
  PRU_KEY='$DEMO_PRU_KEY'      # the PRU, $DEMO_PRU_URN
  HOME_KEY='$DEMO_HOME_KEY'     # a home school, $DEMO_HOME_URN

Who am I:
  curl -s $url/v1/me -H "Authorization: Bearer \$HOME_KEY"

Where is pupil $DEMO_UPN $when, and what did each school mark (as the home school):
  curl -s "$url/v1/pupils/$DEMO_UPN/status?date=$day" -H "Authorization: Bearer \$HOME_KEY"

The PRU's morning register $when:
  curl -s "$url/v1/schools/$DEMO_PRU_URN/register?date=$day&session=AM" -H "Authorization: Bearer \$PRU_KEY"

The PRU marks the pupil present that morning (safe to repeat: Idempotency-Key):
  curl -s -X POST $url/v1/marks -H "Authorization: Bearer \$PRU_KEY" \\
    -H 'Content-Type: application/json' -H 'Idempotency-Key: demo-$day-am' \\
    -d '{"marks":[{"upn":"$DEMO_UPN","urn":"$DEMO_PRU_URN","date":"$day","session":"AM","code":"/"}]}'

The home school's change feed, waiting up to 30 s for something new:
  curl -s "$url/v1/changes?wait=30" -H "Authorization: Bearer \$HOME_KEY"

Demo pupils: $DEMO_UPNS
TXT
[[ -n ${DEMO_REQUEST_UPN:-} ]] || { echo; exit 0; }
cat <<TXT

A placement by consent. $DEMO_REQUEST_GIVEN $DEMO_REQUEST_FAMILY ($DEMO_REQUEST_UPN) is on the home school's roll only.
The PRU asks to take her on Mondays from $day; it cannot see her, so it names her with
her details. The request waits for the home school: until it agrees, the PRU sees
nothing of her and may record nothing (REQ keeps the request's id):
  REQ=\$(curl -s -X POST $url/v1/registrations -H "Authorization: Bearer \$PRU_KEY" \\
    -H 'Content-Type: application/json' \\
    -d '{"upn":"$DEMO_REQUEST_UPN","urn":"$DEMO_PRU_URN","role":"subsidiary","start_date":"$day",
         "schedule":{"mon":["AM","PM"]},"given_name":"$DEMO_REQUEST_GIVEN",
         "family_name":"$DEMO_REQUEST_FAMILY","date_of_birth":"$DEMO_REQUEST_DOB"}' \\
    | tee /dev/stderr | grep -o '"id": *[0-9]*' | head -1 | tr -dc 0-9); echo

The home school sees the requests awaiting its decision, with the pupil, and confirms
(or declines: .../decline -d '{"reason":"..."}'; the PRU may withdraw: .../withdraw;
a request nobody decides on expires):
  curl -s "$url/v1/registrations?status=pending" -H "Authorization: Bearer \$HOME_KEY"
  curl -s -X POST $url/v1/registrations/\$REQ/confirm -H "Authorization: Bearer \$HOME_KEY"

TXT
