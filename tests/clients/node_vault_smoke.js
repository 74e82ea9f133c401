// node-vault against a running server (VAULT_ADDR, VAULT_TOKEN): every call must resolve.
const assert = require('assert');
const vault = require('node-vault')({ endpoint: process.env.VAULT_ADDR, token: process.env.VAULT_TOKEN });
(async () => {
  const root = process.env.VAULT_TOKEN;
  const st = await vault.status(); assert.strictEqual(st.sealed, false);
  await vault.mount({ mount_point: 'nvkv', type: 'kv', options: { version: '2' } });
  await vault.write('nvkv/data/a', { data: { x: '1' } });
  const r = await vault.read('nvkv/data/a'); assert.strictEqual(r.data.data.x, '1');
  const l = await vault.list('nvkv/metadata/'); assert.deepStrictEqual(l.data.keys, ['a']);
  await vault.update('nvkv/data/a', { data: { y: '2' } });      // HTTP PATCH, merge-patch+json
  const r2 = await vault.read('nvkv/data/a'); assert.strictEqual(r2.data.data.y, '2'); assert.strictEqual(r2.data.data.x, '1');
  await vault.mount({ mount_point: 'transit', type: 'transit' });
  await vault.transitCreateKey({ name: 'k' });
  const e = await vault.encryptData({ name: 'k', plaintext: Buffer.from('hi').toString('base64') });
  const d = await vault.decryptData({ name: 'k', ciphertext: e.data.ciphertext });
  assert.strictEqual(Buffer.from(d.data.plaintext, 'base64').toString(), 'hi');
  await vault.enableAuth({ mount_point: 'approle', type: 'approle' });
  await vault.addApproleRole({ role_name: 'r', token_policies: 'default' });
  const rid = await vault.getApproleRoleId({ role_name: 'r' });
  const sid = await vault.getApproleRoleSecret({ role_name: 'r' });
  const login = await vault.approleLogin({ role_id: rid.data.role_id, secret_id: sid.data.secret_id });
  assert.ok(login.auth.client_token);
  assert.strictEqual(vault.token, login.auth.client_token);
  vault.token = root;
  const t = await vault.tokenCreate({ policies: ['default'], ttl: '1h' });
  const me = await vault.tokenLookupSelf(); assert.strictEqual(me.data.id, t.auth.client_token);
  vault.token = root;
  await vault.addPolicy({ name: 'p', rules: 'path "nvkv/*" { capabilities = ["read"] }' });
  const p = await vault.getPolicy({ name: 'p' }); assert.ok(p.rules.includes('nvkv'));
  await vault.unmount({ mount_point: 'transit' });
  console.log('node-vault smoke: OK');
})().catch((err) => { console.error('node-vault smoke FAILED:', err.message, err.response && err.response.body); process.exit(1); });
