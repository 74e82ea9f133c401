# coffer cluster node 1 of 3: one host of a three-host Raft cluster, as Vault and OpenBao
# users write it. node1.hcl, node2.hcl and node3.hcl differ only in the host name, node_id,
# paths and the retry_join list (the other two hosts).
#
#   coffer server --config /etc/coffer/node1.hcl
#   (systemd: coffer@node1, with COFFER_CONFIG=/etc/coffer/node1.hcl in /etc/coffer/node1.env;
#    see systemd/coffer@.service; node1.toml is the same node in coffer's TOML)
#
# Bring-up (README, "Run a three-node cluster"): start all three nodes; `coffer operator init`
# on one of them (that node leads the new cluster); with the Shamir seal, `coffer operator
# unseal` that node with a threshold of the key shares, then each other node with the same
# shares (once the leader is unsealed, each other node fetches a join challenge from it through
# retry_join within 2 s; unsealing proves the key and completes the join); with the static
# seal below, nothing: every node unseals and joins by itself. `coffer operator raft
# list-peers` then shows three voters.
#
# Each host needs:
#   /etc/coffer/tls/ca.pem          the CA that signed every node's API certificate
#   /etc/coffer/tls/node1.pem       this node's certificate chain; names coffer-1.example.com
#   /etc/coffer/tls/node1-key.pem   its private key (mode 0600, owner coffer)
# Port 8200 (API) and 8201 (cluster) open between the three hosts. The cluster port needs no
# certificates from you: it is mutual TLS with a per-cluster CA that coffer creates at init and
# keeps behind the barrier; a joining node gets its certificate in the join handshake.

api_addr     = "https://coffer-1.example.com:8200"   # what clients and other nodes use
cluster_addr = "https://coffer-1.example.com:8201"   # raft and request forwarding
cluster_name = "coffer-prod"

storage "raft" {
  # Under /var/lib/coffer/node1, the directory systemd's coffer@node1 lets coffer write.
  path    = "/var/lib/coffer/node1/data"
  node_id = "node1"                             # stable name; never reuse it for a wiped node

  # The other two nodes. At start, a node that is not yet part of a cluster asks each in turn
  # (every 2 s) for a join challenge until one leads an initialised cluster.
  retry_join {
    leader_api_addr     = "https://coffer-2.example.com:8200"
    leader_ca_cert_file = "/etc/coffer/tls/ca.pem"
  }
  retry_join {
    leader_api_addr     = "https://coffer-3.example.com:8200"
    leader_ca_cert_file = "/etc/coffer/tls/ca.pem"
  }

  # Defaults, shown for reference:
  # heartbeat_interval = "150ms"
  # election_timeout   = "1s"                   # fail-over starts after at most this long
  # snapshot_threshold = 8192
  # trailing_logs      = 10000
  # request_forwarding = true                   # false: standbys answer 307 to the leader
  # read_consistency   = "linearizable"         # "stale": standbys read without a barrier
}

listener "tcp" {
  address         = "0.0.0.0:8200"
  cluster_address = "0.0.0.0:8201"
  tls_cert_file   = "/etc/coffer/tls/node1.pem"
  tls_key_file    = "/etc/coffer/tls/node1-key.pem"
  tls_min_version = "tls12"

  disable_unauthed_generate_root_endpoints = true
  disable_unauthed_rekey_endpoints         = true
}

# Seal: Shamir by default (no seal block). `operator init` prints the key shares; each node
# is unsealed with a threshold of them after every start.
#
# Static seal alternative (OpenBao's auto-unseal with a 32-byte key): every node unseals, and
# a new node joins, without an operator. The SAME key on all three nodes; `operator init`
# then prints recovery keys instead of unseal keys.
#   openssl rand -hex 32 > /etc/coffer/unseal.key   (mode 0600, owner coffer; copy to each host)
#
# seal "static" {
#   current_key_id = "2025-06-01"
#   current_key    = "file:/etc/coffer/unseal.key"
# }

# Each node writes its own audit log (outside the raft path).
audit "file" "main" {
  description = "every request and response, values hashed"
  options {
    file_path = "/var/lib/coffer/node1/audit.log"
    mode      = "0600"
  }
}

default_lease_ttl = "768h"
max_lease_ttl     = "768h"
log_level         = "info"
