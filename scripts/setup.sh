#!/usr/bin/env bash
# Installs what the demo and the tests need on a fresh machine (Node 20 + npm assumed):
# pnpm 10, Dovecot for IMAP/POP3 (when apt is available), the workspace's packages, and a build.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

if ! command -v pnpm >/dev/null 2>&1 || [[ "$(pnpm --version 2>/dev/null)" != 10.* ]]; then
  log "installing pnpm 10 (npm i -g pnpm@10)"
  npm i -g pnpm@10 >/dev/null
fi

as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; elif command -v sudo >/dev/null; then sudo -n "$@"; else return 1; fi; }

apt_packages=()
[[ -x /usr/sbin/dovecot ]] || apt_packages+=(dovecot-core dovecot-imapd dovecot-pop3d dovecot-lmtpd)
if [[ ${M365_SETUP_EXTRAS:-} == *redis* ]] && ! command -v redis-server >/dev/null; then apt_packages+=(redis-server); fi
if [[ ${M365_SETUP_EXTRAS:-} == *chromium* ]] && ! command -v chromium >/dev/null; then apt_packages+=(chromium); fi
# The bridge's tests drive unmodified Debian clients: fetchmail, msmtp, swaks (with the Perl TLS modules
# its --tls needs), and Postfix as a relay client with SASL (libsasl2-modules).
if [[ ${M365_SETUP_EXTRAS:-} == *bridge* ]]; then
  command -v fetchmail >/dev/null || apt_packages+=(fetchmail)
  command -v msmtp >/dev/null || apt_packages+=(msmtp)
  command -v swaks >/dev/null || apt_packages+=(swaks)
  perl -MNet::SSLeay -e1 2>/dev/null || apt_packages+=(libnet-ssleay-perl libio-socket-ssl-perl)
  [[ -x /usr/sbin/postfix ]] || apt_packages+=(postfix)
  [[ -d /usr/lib/x86_64-linux-gnu/sasl2 || -d /usr/lib/sasl2 ]] && compgen -G "/usr/lib/*/sasl2/libplain.so*" >/dev/null || apt_packages+=(libsasl2-modules)
fi
if ((${#apt_packages[@]})); then
  if command -v apt-get >/dev/null && as_root true 2>/dev/null; then
    log "installing ${apt_packages[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    # The packages' own services must not hold the standard ports: the emulator runs its own instances.
    printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null && as_root chmod +x /usr/sbin/policy-rc.d
    # Postfix asks how to configure itself: "No configuration" (the bridge's tests run a private instance).
    if command -v debconf-set-selections >/dev/null; then
      echo "postfix postfix/main_mailer_type select No configuration" | as_root debconf-set-selections
    fi
    as_root apt-get update -qq >/dev/null || log "apt-get update failed; trying the install anyway"
    as_root apt-get install -y -qq --no-install-recommends "${apt_packages[@]}" >/dev/null
    as_root rm -f /usr/sbin/policy-rc.d
  else
    log "cannot install ${apt_packages[*]} (needs apt-get and root): IMAP/POP3 tests and demo steps will be skipped"
  fi
fi

# better-sqlite3 (apps/server) compiles from source when its prebuilt binary cannot be downloaded; node-gyp
# would then download Node's headers too: point it at the installed ones.
node_prefix=$(node -p 'process.execPath.replace(/[\\/]bin[\\/]node(\.exe)?$/, "")')
if [[ -z ${npm_config_nodedir:-} && -f $node_prefix/include/node/node_version.h ]]; then export npm_config_nodedir=$node_prefix; fi

# Quiet when all is well, the tool's own words when not.
run_quietly() {
  local output
  if ! output=$("$@" 2>&1); then
    printf '%s\n' "$output" | tail -n 40
    log "failed: $*"
    exit 1
  fi
}
log "pnpm install"
run_quietly pnpm install --frozen-lockfile
log "building packages"
run_quietly pnpm turbo run build --output-logs=errors-only
