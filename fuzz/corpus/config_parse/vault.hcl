# A Vault/OpenBao-style configuration that starts coffer unchanged.
#
#   coffer server --config /etc/coffer/vault.hcl
#
# coffer reads the HCL (and JSON, see vault.json) that Vault and OpenBao read, with the same
# keys. Keys that mean nothing to coffer (ui, telemetry, pid_file, plugin_directory, ...) are
# accepted and logged as ignored at start; keys coffer does not know at all are errors that
# name the key; keys that coffer cannot honour without weakening security or breaking clients
# (tls_require_and_verify_client_cert = true, proxy_protocol_behavior, ha_storage, ...) are
# refused.
#
# HashiCorp Vault reads this file as it is (the audit stanza is OpenBao's; Vault warns about it
# and declares no device); OpenBao 2.x too, except storage "file", which OpenBao dropped (it
# has raft only).
#
# Differences worth knowing:
#   - storage "raft" is parsed but refused at start until replicated storage lands; use "file".
#   - relative paths are relative to this file's directory, not the working directory.
#   - listener "tcp" max_request_size must be positive (coffer always limits bodies).

ui            = true                      # ignored: coffer has no web UI
api_addr      = "https://coffer.example.com:8200"
cluster_addr  = "https://coffer.example.com:8201"
cluster_name  = "coffer-prod"

default_lease_ttl = "768h"
max_lease_ttl     = "768h"
log_level         = "info"

storage "file" {
  path = "/var/lib/coffer/data"
}

listener "tcp" {
  address         = "0.0.0.0:8200"
  cluster_address = "0.0.0.0:8201"
  tls_cert_file   = "/etc/coffer/tls/server.pem"
  tls_key_file    = "/etc/coffer/tls/server-key.pem"
  tls_min_version = "tls12"

  disable_unauthed_generate_root_endpoints = true
  disable_unauthed_rekey_endpoints         = true
}

# OpenBao's static seal: auto-unseal with a 32-byte key. "env://NAME" and "file:///PATH"
# (OpenBao's spelling) work as well as coffer's "env:NAME" and "file:PATH".
seal "static" {
  current_key_id = "2025-06-01"
  current_key    = "env://COFFER_UNSEAL_KEY"
}

# Audit devices are declared here and enabled at every unseal, as in OpenBao 2.x: a device
# cannot be created through sys/audit unless unsafe_allow_api_audit_creation = true, and a
# declared device cannot be disabled through the API. The file must be outside the storage
# path; /var/lib/coffer is where systemd/coffer.service lets coffer write.
# Each line carries a link of a keyed hash chain; `coffer audit verify FILE` has the server
# check it.
audit "file" "main" {
  description = "every request and response, values hashed"
  options {
    file_path = "/var/lib/coffer/audit.log"
    mode      = "0600"
    fsync     = "true"                    # coffer's own: sync every line before the request goes on
  }
}

# Off by default; both weaken the audit device rules (see README, Configuration):
# unsafe_allow_api_audit_creation = false
# allow_audit_log_prefixing       = false

telemetry {                               # ignored: metrics export is not implemented
  disable_hostname = true
}
