path "secret/data/tmp" {
  capabilities = ["read"]
  expiration   = "2030-01-01T00:00:00Z"
}
path "sys/policies/acl/*" {
  capabilities = ["list"]
  pagination_limit = 10
}
