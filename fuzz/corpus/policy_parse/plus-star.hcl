path "secret/+*" {
  capabilities = ["read"]
}
