//! Response wrapping: a response is stored in the cubbyhole of a single-use token and the
//! client receives only that token (`wrap_info`).
//!
//! The stored record (cubbyhole key [`RESPONSE_KEY`] of the wrapping token) is versioned JSON:
//! `{"v":1,"response":"<envelope JSON>","creation_time":"...","creation_ttl":N,"creation_path":"..."}`.
//! The wrapping token has the internal `response-wrapping` policy, `num_uses` 1 and a TTL equal
//! to the wrap TTL; unwrapping revokes it, which also erases its cubbyhole.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::core::error::{Error, Result};
use crate::core::request::{Response, WrapInfo};
use crate::core::token::store::NewToken;
use crate::core::token::{TokenEntry, TokenType};
use crate::core::{envelope, Active, Core};
use crate::secret::ClientToken;
use crate::util::timefmt::rfc3339_nano;

/// Cubbyhole key of the stored response.
pub const RESPONSE_KEY: &str = "response";
const RECORD_VERSION: u8 = 1;

/// The text clients see for any bad wrapping token.
pub const INVALID_WRAPPING_TOKEN: &str = "wrapping token is not valid or does not exist";

/// What a wrapping token's cubbyhole holds.
#[derive(Serialize, Deserialize)]
pub struct WrappedRecord {
    pub v: u8,
    /// The original response, rendered.
    pub response: String,
    pub creation_time: String,
    pub creation_ttl: u64,
    pub creation_path: String,
}

impl Core {
    fn cubbyhole_of(&self, active: &Active, entry: &TokenEntry) -> Result<coffer_storage::View> {
        let route =
            active.mounts.get("cubbyhole/").ok_or_else(|| Error::internal("cubbyhole mount missing"))?;
        Ok(route.view.sub(&format!("{}/", entry.id_hmac)))
    }

    /// Wraps `resp` (already complete, auth issued) into a new wrapping token.
    pub async fn wrap_response(
        &self,
        active: &Active,
        resp: Response,
        request_id: &str,
        ttl: u64,
        creation_path: &str,
        now: OffsetDateTime,
    ) -> Result<Response> {
        let wrapped_accessor = resp
            .wrapped_accessor
            .clone()
            .or_else(|| resp.auth.as_ref().map(|a| a.accessor.clone()))
            .unwrap_or_default();
        let body = envelope::render(resp, request_id);
        let body = String::from_utf8(body).map_err(|_| Error::internal("envelope is not UTF-8"))?;
        self.store_wrapped(active, body.trim_end().to_owned(), ttl, creation_path, wrapped_accessor, now)
            .await
    }

    /// Creates a wrapping token holding `body` and returns the `wrap_info` response.
    pub async fn store_wrapped(
        &self,
        active: &Active,
        body: String,
        ttl: u64,
        creation_path: &str,
        wrapped_accessor: String,
        now: OffsetDateTime,
    ) -> Result<Response> {
        let spec = NewToken {
            policies: vec!["response-wrapping".into()],
            path: creation_path.to_owned(),
            display_name: String::new(),
            num_uses: 1,
            ttl,
            explicit_max_ttl: ttl,
            token_type: TokenType::Service,
            is_wrapping: true,
            ..NewToken::default()
        };
        let (token, entry) = active.tokens.create(spec, now).await?;
        let creation_time = rfc3339_nano(now);
        let record = WrappedRecord {
            v: RECORD_VERSION,
            response: body,
            creation_time: creation_time.clone(),
            creation_ttl: ttl,
            creation_path: creation_path.to_owned(),
        };
        self.cubbyhole_of(active, &entry)?.put(RESPONSE_KEY, serde_json::to_vec(&record)?).await?;
        let mut out = Response::empty();
        out.wrap_info = Some(WrapInfo {
            token: token.expose().to_owned(),
            accessor: entry.accessor.clone(),
            ttl,
            creation_time,
            creation_path: creation_path.to_owned(),
            wrapped_accessor,
        });
        Ok(out)
    }

    /// Reads the record of a wrapping token entry.
    pub async fn wrapped_record(&self, active: &Active, entry: &TokenEntry) -> Result<Option<WrappedRecord>> {
        if !entry.is_wrapping {
            return Ok(None);
        }
        let Some(e) = self.cubbyhole_of(active, entry)?.get(RESPONSE_KEY).await? else { return Ok(None) };
        let rec: WrappedRecord = serde_json::from_slice(&e.value)
            .map_err(|err| Error::internal(format!("corrupt wrapped response: {err}")))?;
        if rec.v != RECORD_VERSION {
            return Err(Error::internal(format!("unsupported wrapped response version {}", rec.v)));
        }
        Ok(Some(rec))
    }

    /// Finds a live wrapping token by its text.
    pub async fn wrapping_entry(
        &self,
        active: &Active,
        token: &ClientToken,
        now: OffsetDateTime,
    ) -> Result<TokenEntry> {
        match active.tokens.lookup(token, now).await? {
            Some((e, _)) if e.is_wrapping => Ok(e),
            _ => Err(Error::bad(INVALID_WRAPPING_TOKEN)),
        }
    }
}
