path "secret/data/app/+/config" {
  capabilities = ["read", "list"]
}
path "secret/metadata/app/*" {
  capabilities = ["list"]
}
path "secret/data/app/db" {
  capabilities = ["create", "update"]
  required_parameters = ["data"]
  allowed_parameters = {
    "data" = []
    "options" = ["cas"]
  }
  denied_parameters = {
    "password" = ["CANARYz7q4secretVALUE"]
  }
  min_wrapping_ttl = "1m"
  max_wrapping_ttl = "1h"
}
