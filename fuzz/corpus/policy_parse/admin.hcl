# Full access, sudo on sys.
path "*" {
  capabilities = ["create", "read", "update", "patch", "delete", "list", "sudo"]
}
path "sys/seal" {
  capabilities = ["deny"]
}
