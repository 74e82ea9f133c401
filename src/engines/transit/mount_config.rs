//! The mount's own settings: `config/keys` (whether encrypt may create keys) and `cache-config`
//! (the size of the decoded-key cache). Both are versioned records in the mount's view.

use serde::{Deserialize, Serialize};
use serde_json::json;

use coffer_storage::View;

use super::Transit;
use crate::core::error::{Error, Result};
use crate::core::fields;
use crate::core::request::{BackendRequest, Response};

const CONFIG_KEYS: &str = "config/keys";
const CONFIG_CACHE: &str = "config/cache";

/// Mount-wide key settings (`config/keys`).
#[derive(Default, Deserialize, Serialize)]
pub struct ConfigKeys {
    v: u32,
    pub disable_upsert: bool,
}

/// Mount cache settings (`cache-config`).
#[derive(Default, Deserialize, Serialize)]
struct CacheConfig {
    v: u32,
    size: i64,
}

/// Reads `config/keys`.
pub async fn read_config_keys(view: &View) -> Result<ConfigKeys> {
    match view.get(CONFIG_KEYS).await? {
        None => Ok(ConfigKeys::default()),
        Some(e) => {
            serde_json::from_slice(&e.value).map_err(|e| Error::internal(format!("corrupt config/keys: {e}")))
        }
    }
}

/// GET `cache-config`.
pub async fn cache_config_read(_t: &Transit, req: &BackendRequest) -> Result<Response> {
    let size = match req.view.get(CONFIG_CACHE).await? {
        None => 0,
        Some(e) => serde_json::from_slice::<CacheConfig>(&e.value).map_err(Error::internal)?.size,
    };
    Ok(Response::json(json!({"size": size})))
}

/// POST `cache-config`.
pub async fn cache_config_write(t: &Transit, req: &BackendRequest) -> Result<Response> {
    let size = fields::int_or(&req.data, "size", 0)?;
    if size != 0 && size < 10 {
        return Err(Error::bad("size must be 0 or a value greater or equal to 10"));
    }
    let rec = CacheConfig { v: 1, size };
    req.view.put(CONFIG_CACHE, serde_json::to_vec(&rec)?).await?;
    t.store().set_limit(size as usize);
    Ok(Response::json(json!({"size": size})))
}

/// GET `config/keys`.
pub async fn config_keys_read(req: &BackendRequest) -> Result<Response> {
    let c = read_config_keys(&req.view).await?;
    Ok(Response::json(json!({"disable_upsert": c.disable_upsert})))
}

/// POST `config/keys`.
pub async fn config_keys_write(req: &BackendRequest) -> Result<Response> {
    let mut c = read_config_keys(&req.view).await?;
    if let Some(v) = fields::boolean(&req.data, "disable_upsert")? {
        c.disable_upsert = v;
    }
    c.v = 1;
    req.view.put(CONFIG_KEYS, serde_json::to_vec(&c)?).await?;
    Ok(Response::json(json!({"disable_upsert": c.disable_upsert})))
}
