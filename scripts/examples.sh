#!/usr/bin/env bash
# Prints example requests for the daemon `make run` is about to start.
addr=${DUALREG_LISTEN:-127.0.0.1:8080}
cat <<TXT

dualregd is starting on http://$addr  (Ctrl-C stops it; 'make stop' stops the database)

  curl -i http://$addr/healthz
  curl -i http://$addr/readyz

TXT
