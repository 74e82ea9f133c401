path "secret/*" {
  capabilities = ["read"
