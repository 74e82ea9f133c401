//! Client-visible secret values: tokens as callers present them and as the server issues them.
//!
//! A leaf module (it imports nothing from the rest of the crate), so the HTTP client, the
//! reference resolver and the server share one zeroizing, redacted token type.

use std::fmt;

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// A client token as presented by a caller or just issued. Zeroized on drop, no `Clone`, no
/// `PartialEq`, redacted `Debug`.
pub struct ClientToken(Zeroizing<String>);

impl ClientToken {
    /// Wraps a token string.
    pub fn new(s: String) -> Self {
        Self(Zeroizing::new(s))
    }

    /// The token text, to send it to the client that owns it or to HMAC it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Constant-time equality with another token string.
    pub fn ct_eq(&self, other: &str) -> bool {
        self.0.as_bytes().ct_eq(other.as_bytes()).into()
    }

    /// An independent copy (explicit: tokens are not `Clone`).
    pub fn duplicate(&self) -> Self {
        Self::new(self.0.as_str().to_owned())
    }
}

impl fmt::Debug for ClientToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_token_is_redacted() {
        let t = ClientToken::new("hvs.secret".into());
        assert_eq!(format!("{t:?}"), "[redacted]");
        assert!(t.ct_eq("hvs.secret"));
        assert!(!t.ct_eq("hvs.secreT"));
    }
}
