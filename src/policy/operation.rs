//! The operation a request performs, as policies name capabilities for it.

use std::fmt;

/// What a request does, decided from the HTTP method (and the existence check for writes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operation {
    Create,
    Delete,
    List,
    Patch,
    Read,
    Update,
}

impl Operation {
    /// Vault's name for the operation (audit logs, capabilities).
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "create",
            Operation::Delete => "delete",
            Operation::List => "list",
            Operation::Patch => "patch",
            Operation::Read => "read",
            Operation::Update => "update",
        }
    }

    /// True for operations that may carry a body to check against parameter constraints.
    pub fn is_write(self) -> bool {
        matches!(self, Operation::Create | Operation::Update | Operation::Patch)
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
