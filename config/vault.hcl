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
# HashiCorp Vault reads this file as it is; OpenBao 2.x too, except storage "file", which
# OpenBao dropped (it has raft only).
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

telemetry {                               # ignored: metrics export is not implemented
  disable_hostname = true
}
