"""hvac (the Python Vault client) against a running server: the calls clients.md lists as the
ones real users make. Exits non-zero on the first failure. Env: VAULT_ADDR, VAULT_TOKEN."""
import base64
import os
import sys

import hvac

client = hvac.Client(url=os.environ["VAULT_ADDR"], token=os.environ["VAULT_TOKEN"])
assert client.is_authenticated(), "root token not accepted"

# sys
assert client.sys.is_initialized()
assert not client.sys.is_sealed()
st = client.sys.read_seal_status()
assert st["sealed"] is False and st["t"] >= 1
health = client.sys.read_health_status(method="GET", standby_ok=True)
assert health["initialized"] and not health["sealed"]
assert "ha_enabled" in client.sys.read_leader_status()
client.sys.enable_secrets_engine("kv", path="hv-kv", options={"version": "2"})
mounts = client.sys.list_mounted_secrets_engines()
assert "hv-kv/" in mounts["data"] and "hv-kv/" in mounts
tune = client.sys.read_mount_configuration("hv-kv")
assert tune["data"]["default_lease_ttl"] == 2764800
client.sys.tune_mount_configuration("hv-kv", default_lease_ttl="3600s", max_lease_ttl="7200s")
assert client.sys.read_mount_configuration("hv-kv")["data"]["default_lease_ttl"] == 3600
assert client.sys.get_encryption_key_status()["data"]["term"] >= 1

# kv v2
kv = client.secrets.kv.v2
kv.configure(max_versions=5, mount_point="hv-kv")
assert kv.read_configuration(mount_point="hv-kv")["data"]["max_versions"] == 5
r = kv.create_or_update_secret("app/db", {"password": "p1"}, mount_point="hv-kv")
assert r["data"]["version"] == 1
kv.create_or_update_secret("app/db", {"password": "p2"}, cas=1, mount_point="hv-kv")
try:
    kv.create_or_update_secret("app/db", {"password": "p3"}, cas=1, mount_point="hv-kv")
    raise AssertionError("cas mismatch accepted")
except hvac.exceptions.InvalidRequest as e:
    assert "did not match the current version" in str(e)
assert kv.read_secret_version("app/db", mount_point="hv-kv", raise_on_deleted_version=True)["data"]["data"]["password"] == "p2"
kv.patch("app/db", {"user": "ada"}, mount_point="hv-kv")
assert kv.read_secret_version("app/db", mount_point="hv-kv", raise_on_deleted_version=True)["data"]["data"] == {"password": "p2", "user": "ada"}
assert kv.list_secrets("app", mount_point="hv-kv")["data"]["keys"] == ["db"]
kv.delete_latest_version_of_secret("app/db", mount_point="hv-kv")
deleted = kv.read_secret_version("app/db", mount_point="hv-kv", raise_on_deleted_version=False)
assert deleted["data"]["data"] is None and deleted["data"]["metadata"]["deletion_time"] != ""
kv.undelete_secret_versions("app/db", [3], mount_point="hv-kv")
kv.destroy_secret_versions("app/db", [1], mount_point="hv-kv")
meta = kv.read_secret_metadata("app/db", mount_point="hv-kv")
assert meta["data"]["versions"]["1"]["destroyed"] is True
kv.update_metadata("app/db", max_versions=3, custom_metadata={"owner": "ops"}, mount_point="hv-kv")
assert kv.read_secret_metadata("app/db", mount_point="hv-kv")["data"]["custom_metadata"] == {"owner": "ops"}
kv.delete_metadata_and_all_versions("app/db", mount_point="hv-kv")
try:
    kv.read_secret_metadata("app/db", mount_point="hv-kv")
    raise AssertionError("metadata survived delete")
except hvac.exceptions.InvalidPath:
    pass

# transit
client.sys.enable_secrets_engine("transit", path="hv-transit")
tr = client.secrets.transit
tr.create_key("k", mount_point="hv-transit")
tr.create_key("signer", key_type="ed25519", mount_point="hv-transit")
pt = base64.b64encode(b"hello hvac").decode()
ct = tr.encrypt_data("k", plaintext=pt, mount_point="hv-transit")["data"]["ciphertext"]
assert tr.decrypt_data("k", ciphertext=ct, mount_point="hv-transit")["data"]["plaintext"] == pt
batch = tr.encrypt_data("k", batch_input=[{"plaintext": pt}, {"plaintext": pt}], mount_point="hv-transit")
assert len(batch["data"]["batch_results"]) == 2
tr.rotate_key("k", mount_point="hv-transit")
ct2 = tr.rewrap_data("k", ciphertext=ct, mount_point="hv-transit")["data"]["ciphertext"]
assert ct2.startswith("vault:v2:")
assert tr.read_key("k", mount_point="hv-transit")["data"]["latest_version"] == 2
assert "k" in tr.list_keys(mount_point="hv-transit")["data"]["keys"]
dk = tr.generate_data_key("k", key_type="plaintext", mount_point="hv-transit")
assert "plaintext" in dk["data"] and "ciphertext" in dk["data"]
mac = tr.generate_hmac("k", hash_input=pt, mount_point="hv-transit")["data"]["hmac"]
assert tr.verify_signed_data("k", hash_input=pt, hmac=mac, mount_point="hv-transit")["data"]["valid"]
sig = tr.sign_data("signer", hash_input=pt, mount_point="hv-transit")["data"]["signature"]
assert tr.verify_signed_data("signer", hash_input=pt, signature=sig, mount_point="hv-transit")["data"]["valid"]
assert len(tr.hash_data(hash_input=pt, mount_point="hv-transit")["data"]["sum"]) == 64
assert tr.generate_random_bytes(n_bytes=16, mount_point="hv-transit")["data"]["random_bytes"]

# policies
client.sys.create_or_update_policy("hv-read", 'path "hv-kv/data/*" { capabilities = ["read"] }')
assert "hv-kv" in client.sys.read_policy("hv-read")["data"]["rules"]
assert "hv-read" in client.sys.list_policies()["data"]["policies"]
client.sys.create_or_update_acl_policy("hv-acl", 'path "x" { capabilities = ["read"] }')
assert client.sys.read_acl_policy("hv-acl")["data"] == {"name": "hv-acl", "policy": 'path "x" { capabilities = ["read"] }'}

# approle
client.sys.enable_auth_method("approle", path="hv-approle")
ar = client.auth.approle
ar.create_or_update_approle("web", token_policies=["hv-read"], secret_id_num_uses=2, mount_point="hv-approle")
assert ar.read_role("web", mount_point="hv-approle")["data"]["token_type"] == "default"
role_id = ar.read_role_id("web", mount_point="hv-approle")["data"]["role_id"]
sid = ar.generate_secret_id("web", metadata={"team": "a"}, mount_point="hv-approle")["data"]["secret_id"]
assert ar.read_secret_id("web", sid, mount_point="hv-approle")["data"]["metadata"] == {"team": "a"}
wrapped = ar.generate_secret_id("web", wrap_ttl="5m", mount_point="hv-approle")
assert wrapped["wrap_info"]["ttl"] == 300
unwrapped = client.sys.unwrap(token=wrapped["wrap_info"]["token"])
login_client = hvac.Client(url=os.environ["VAULT_ADDR"])
login = login_client.auth.approle.login(role_id=role_id, secret_id=unwrapped["data"]["secret_id"], mount_point="hv-approle")
assert login["auth"]["metadata"]["role_name"] == "web"
assert login_client.is_authenticated()
assert ar.list_secret_id_accessors("web", mount_point="hv-approle")["data"]["keys"]

# tokens
tok = client.auth.token.create(policies=["hv-read"], ttl="5m")
assert tok["auth"]["lease_duration"] == 300
assert client.auth.token.lookup(tok["auth"]["client_token"])["data"]["policies"] == ["default", "hv-read"]
client.auth.token.renew(tok["auth"]["client_token"], increment="10m")
client.auth.token.revoke(tok["auth"]["client_token"])
try:
    client.auth.token.lookup(tok["auth"]["client_token"])
    raise AssertionError("revoked token still looks up")
except hvac.exceptions.Forbidden:
    pass

print("hvac smoke: OK")
