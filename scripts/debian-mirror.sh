#!/usr/bin/env bash
# Prints the Debian archive URL this host's apt already downloads from:
# deb822 stanzas in sources.list.d first, then one-line entries in
# sources.list. Security and foreign repositories are skipped; only the
# archive URL itself is printed. Prints nothing when there is none.
set -euo pipefail

{
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -r "$f" ] || continue
        awk '
            function flush() {
                if (uri != "" && suites ~ /(bookworm|trixie|forky|sid|stable|testing|unstable)/ &&
                    suites !~ /security/ && uri !~ /security/ && found == "") found = uri
                uri = ""; suites = ""
            }
            /^[[:space:]]*$/ { flush(); next }
            tolower($1) == "uris:" { uri = $2 }
            tolower($1) == "suites:" { $1 = ""; suites = $0 }
            END { flush(); if (found != "") print found }
        ' "$f"
    done
    if [ -r /etc/apt/sources.list ]; then
        awk '$1 == "deb" {
                 for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { u = $i; s = $(i + 1); break }
                 if (u != "" && u !~ /security/ && s !~ /security/) { print u; exit }
             }' /etc/apt/sources.list
    fi
} | head -n 1
