path "transit/encrypt/app" { capabilities = ["update"] }
path "transit/decrypt/app" { capabilities = ["update"] }
path "auth/token/lookup-self" { capabilities = ["read"] }
