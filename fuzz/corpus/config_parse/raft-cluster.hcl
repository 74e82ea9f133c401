api_addr     = "https://10.0.0.1:8200"
cluster_addr = "https://10.0.0.1:8201"
disable_mlock = true
storage "raft" {
  path    = "/var/lib/coffer/raft"
  node_id = "node1"
  retry_join {
    leader_api_addr = "https://10.0.0.2:8200"
  }
}
listener "tcp" {
  address         = "0.0.0.0:8200"
  cluster_address = "0.0.0.0:8201"
  tls_cert_file   = "server.pem"
  tls_key_file    = "server-key.pem"
}
