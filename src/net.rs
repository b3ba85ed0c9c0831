//! IPv4 networks, for checking the CIDRs users give (subnets, bridges) before anything runs.

use std::net::Ipv4Addr;

/// An IPv4 network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    /// Network address.
    pub addr: u32,
    /// Prefix length.
    pub prefix: u32,
}

impl Cidr {
    /// Parses `a.b.c.d/n`; the address must be the network's own (no host bits).
    pub fn parse(s: &str) -> Option<Cidr> {
        let c = Cidr::parse_address(s)?;
        (c.addr & c.mask() == c.addr).then_some(c)
    }

    /// Parses an interface address with its prefix, `a.b.c.d/n` (host bits allowed, as in a
    /// bridge's `172.30.0.1/16`).
    pub fn parse_address(s: &str) -> Option<Cidr> {
        let (ip, prefix) = s.split_once('/')?;
        let addr = u32::from(ip.parse::<Ipv4Addr>().ok()?);
        let prefix: u32 = prefix.parse().ok().filter(|p| *p <= 32)?;
        Some(Cidr { addr, prefix })
    }

    /// One address, as a /32.
    pub fn host(ip: Ipv4Addr) -> Cidr {
        Cidr { addr: u32::from(ip), prefix: 32 }
    }

    fn mask(self) -> u32 {
        if self.prefix == 0 { 0 } else { u32::MAX << (32 - self.prefix) }
    }

    /// Whether the two networks share an address.
    pub fn overlaps(self, other: Cidr) -> bool {
        let m = self.mask() & other.mask();
        self.addr & m == other.addr & m
    }

    /// Whether `other` lies inside this network.
    pub fn contains(self, other: Cidr) -> bool {
        other.prefix >= self.prefix && other.addr & self.mask() == self.addr
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.addr), self.prefix)
    }
}
