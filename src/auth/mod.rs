//! Auth methods: the token store (always mounted at `auth/token/`) and AppRole.

pub mod approle;
pub mod token;
