storage "file" {
  path = "data"
