//! CIDR lists as AppRole parses, stores, compares and enforces them.
//!
//! Two flavours exist in Vault and clients see both: `secret_id_bound_cidrs` and a secret ID's
//! `cidr_list`/`token_bound_cidrs` are CIDR blocks (Go's `net.ParseCIDR`, a prefix is
//! required), while a role's `token_bound_cidrs` are addresses or blocks (`sockaddr`), shown
//! without a prefix when they name one host.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::core::error::Error;
use crate::util::net::parse_addr_or_block;

pub use crate::util::net::parse_block;

/// Why a CIDR list was refused; the texts are Vault's.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    /// An address or block that is neither (`sockaddr` parsing).
    #[error(
        "error parsing address {0:?}: Unable to convert {0:?} to an IPv4 or IPv6 address, or a UNIX Socket"
    )]
    InvalidAddress(String),
    /// Not a CIDR block (Go's `net.ParseCIDR`).
    #[error("invalid CIDR address: {0}")]
    InvalidBlock(String),
    /// A secret ID's blocks are not inside the role's (both rendered as Go's `%q` lists).
    #[error(
        "failed to verify subset relationship between CIDR blocks on the role {role} and CIDR blocks on the secret ID {secret_id}"
    )]
    NotSubset { role: String, secret_id: String },
}

/// A refused CIDR list is the client's mistake: 400 with Vault's text.
impl From<CidrError> for Error {
    fn from(e: CidrError) -> Self {
        Error::bad(e.to_string())
    }
}

/// Checks a list of CIDR blocks; the error names the first bad block (Go's wording).
pub fn validate_blocks(list: &[String]) -> Result<Vec<IpNet>, CidrError> {
    list.iter().map(|s| parse_block(s).ok_or_else(|| CidrError::InvalidBlock(s.trim().to_owned()))).collect()
}

/// Parses an address or a block (Vault's `parseutil.ParseAddrs`) into its display form: a bare
/// address for a single host, `addr/prefix` otherwise.
pub fn parse_addr(s: &str) -> Result<String, CidrError> {
    let t = s.trim();
    let Some(net) = parse_addr_or_block(t) else { return Err(CidrError::InvalidAddress(t.to_owned())) };
    Ok(if net.prefix_len() == net.max_prefix_len() { net.addr().to_string() } else { net.to_string() })
}

/// A stored address or block as a network (a bare address is a host block).
fn as_net(s: &str) -> Option<IpNet> {
    parse_addr_or_block(s)
}

/// Every block of `inner` lies inside some block of `outer` (an empty `outer` allows all), as
/// Vault's `verifyCIDRRoleSecretIDSubset`. The error is Vault's message.
pub fn verify_subset(inner: &[String], outer: &[String]) -> Result<(), CidrError> {
    if inner.is_empty() || outer.is_empty() {
        return Ok(());
    }
    let outer_nets: Vec<Option<IpNet>> = outer.iter().map(|s| as_net(s)).collect();
    let ok = inner.iter().all(|i| {
        let Some(i) = as_net(i) else { return false };
        outer_nets.iter().flatten().any(|o| o.trunc().contains(&i.trunc()))
    });
    if ok {
        return Ok(());
    }
    // Vault shows the role's bare addresses with an explicit host prefix here.
    let shown: Vec<String> = outer
        .iter()
        .map(|s| match s.trim().parse::<IpAddr>() {
            Ok(IpAddr::V4(_)) => format!("{}/32", s.trim()),
            Ok(IpAddr::V6(_)) => format!("{}/128", s.trim()),
            Err(_) => s.clone(),
        })
        .collect();
    Err(CidrError::NotSubset { role: go_quote_list(&shown), secret_id: go_quote_list(inner) })
}

/// True if `addr` lies in one of the blocks (addresses or blocks; unparsable entries never
/// match). IPv4-mapped IPv6 addresses are compared as IPv4.
pub fn contains(list: &[String], addr: IpAddr) -> bool {
    let addr = addr.to_canonical();
    list.iter().filter_map(|s| as_net(s)).any(|n| n.contains(&addr))
}

/// Parses stored addresses/blocks into networks for a token's `bound_cidrs`.
pub fn to_nets(list: &[String]) -> Vec<IpNet> {
    list.iter().filter_map(|s| as_net(s)).collect()
}

/// Go's `%q` of a `[]string`: `["a" "b"]`.
pub fn go_quote_list(list: &[String]) -> String {
    let items: Vec<String> = list.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", items.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn blocks_need_a_prefix() {
        assert!(parse_block("10.0.0.0/8").is_some());
        assert!(parse_block(" 10.1.2.3/8 ").is_some());
        assert!(parse_block("::1/128").is_some());
        assert!(parse_block("127.0.0.1").is_none());
        assert!(parse_block("bogus").is_none());
        assert_eq!(
            validate_blocks(&v(&["10.0.0.0/8", "bogus"])).unwrap_err().to_string(),
            "invalid CIDR address: bogus"
        );
    }

    #[test]
    fn addresses_display_like_sockaddr() {
        assert_eq!(parse_addr("127.0.0.1").unwrap(), "127.0.0.1");
        assert_eq!(parse_addr("127.0.0.1/32").unwrap(), "127.0.0.1");
        assert_eq!(parse_addr("10.0.0.0/8").unwrap(), "10.0.0.0/8");
        assert_eq!(parse_addr("::1").unwrap(), "::1");
        assert_eq!(
            parse_addr("bogus").unwrap_err().to_string(),
            "error parsing address \"bogus\": Unable to convert \"bogus\" to an IPv4 or IPv6 address, or a UNIX Socket"
        );
    }

    #[test]
    fn subsets_and_membership() {
        assert!(verify_subset(&v(&["127.0.0.1/32"]), &v(&["127.0.0.0/8"])).is_ok());
        assert!(verify_subset(&v(&["10.1.0.0/16"]), &v(&["127.0.0.1", "10.0.0.0/8"])).is_ok());
        assert!(verify_subset(&v(&["10.0.0.0/8"]), &v(&[])).is_ok());
        let e = verify_subset(&v(&["10.0.0.0/8"]), &v(&["127.0.0.0/8"])).unwrap_err().to_string();
        assert_eq!(
            e,
            "failed to verify subset relationship between CIDR blocks on the role [\"127.0.0.0/8\"] and CIDR blocks on the secret ID [\"10.0.0.0/8\"]"
        );
        let e =
            verify_subset(&v(&["192.168.0.0/16"]), &v(&["127.0.0.1", "10.0.0.0/8"])).unwrap_err().to_string();
        assert!(e.contains("[\"127.0.0.1/32\" \"10.0.0.0/8\"]"), "{e}");
        // A wider block is not a subset of a narrower one.
        assert!(verify_subset(&v(&["10.0.0.0/7"]), &v(&["10.0.0.0/8"])).is_err());
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(contains(&v(&["127.0.0.0/8"]), lo));
        assert!(contains(&v(&["127.0.0.1"]), lo));
        assert!(!contains(&v(&["10.0.0.0/8"]), lo));
        assert!(contains(&v(&["127.0.0.0/8"]), "::ffff:127.0.0.1".parse().unwrap()));
    }
}
