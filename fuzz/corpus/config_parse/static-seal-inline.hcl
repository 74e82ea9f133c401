storage "inmem" {}
listener "tcp" {
  address     = "127.0.0.1:0"
  tls_disable = true
}
seal "static" {
  current_key_id = "inline"
  current_key    = "CANARYz7q4secretVALUE"
}
