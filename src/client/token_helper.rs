//! The token helper file `~/.vault-token`, shared with the `vault` and `bao` CLIs: `login`
//! writes it (mode 0600, replaced atomically), every command reads it when no token variable is
//! set. A missing file means no token.

use std::path::{Path, PathBuf};

use super::error::ClientError;
use crate::secret::ClientToken;

/// Name of the token helper file in the home directory.
pub const TOKEN_HELPER_FILE: &str = ".vault-token";

/// The user's home directory (`$HOME`).
pub fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME").filter(|h| !h.is_empty()).map(PathBuf::from)
}

/// Reads the token helper file; a missing or empty file means no token.
pub fn read_token_helper(path: &Path) -> Result<Option<ClientToken>, ClientError> {
    match std::fs::read_to_string(path) {
        Ok(s) => {
            let s = zeroize::Zeroizing::new(s);
            let t = s.trim();
            Ok((!t.is_empty()).then(|| ClientToken::new(t.to_owned())))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(helper_error(path, e)),
    }
}

/// Stores a token in the token helper file with mode 0600, replacing it atomically.
pub fn store_token_helper(path: &Path, token: &ClientToken) -> Result<(), ClientError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let err = |e| helper_error(path, e);
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f =
        std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp).map_err(err)?;
    let written = f.write_all(token.expose().as_bytes()).and_then(|()| f.sync_all());
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(err(e));
    }
    Ok(())
}

/// Removes the token helper file (no error when absent).
pub fn erase_token_helper(path: &Path) -> Result<(), ClientError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(helper_error(path, e)),
    }
}

fn helper_error(path: &Path, source: std::io::Error) -> ClientError {
    ClientError::TokenHelper { path: path.to_path_buf(), source }
}
