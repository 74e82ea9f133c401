//! IP addresses and CIDR blocks as Vault's token and AppRole settings write them.

use std::net::IpAddr;

use ipnet::IpNet;

/// An address or a block (`10.0.0.1` is the host block `10.0.0.1/32`), as Vault's `sockaddr`
/// parsing accepts for `bound_cidrs` / `token_bound_cidrs`. Surrounding whitespace is ignored.
pub fn parse_addr_or_block(s: &str) -> Option<IpNet> {
    let t = s.trim();
    if t.contains('/') {
        t.parse::<IpNet>().ok()
    } else {
        t.parse::<IpAddr>().ok().map(IpNet::from)
    }
}

/// One CIDR block the way Go's `net.ParseCIDR` reads it (the prefix is required).
pub fn parse_block(s: &str) -> Option<IpNet> {
    let t = s.trim();
    if !t.contains('/') {
        return None;
    }
    t.parse::<IpNet>().ok()
}

/// True when `remote` lies in one of `cidrs`; an empty list allows every address. An
/// IPv4-mapped IPv6 peer is checked as the IPv4 address it carries.
pub fn allowed(cidrs: &[IpNet], remote: Option<IpAddr>) -> bool {
    if cidrs.is_empty() {
        return true;
    }
    let Some(ip) = remote.map(|ip| ip.to_canonical()) else { return false };
    cidrs.iter().any(|c| c.contains(&ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_blocks() {
        assert_eq!(parse_addr_or_block(" 10.0.0.1 ").unwrap().to_string(), "10.0.0.1/32");
        assert_eq!(parse_addr_or_block("10.0.0.0/8").unwrap().to_string(), "10.0.0.0/8");
        assert!(parse_addr_or_block("nope").is_none());
        assert!(parse_block("10.0.0.1").is_none());
        assert!(parse_block("10.0.0.0/8").is_some());
        let nets = vec![parse_block("127.0.0.0/8").unwrap()];
        assert!(allowed(&nets, Some("127.0.0.1".parse().unwrap())));
        assert!(allowed(&nets, Some("::ffff:127.0.0.1".parse().unwrap())));
        assert!(!allowed(&nets, Some("10.0.0.1".parse().unwrap())));
        assert!(!allowed(&nets, None));
        assert!(allowed(&[], None));
    }
}
