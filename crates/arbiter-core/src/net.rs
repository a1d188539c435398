//! The outbound address guard: which resolved addresses, and which ports, Arbiter may contact on
//! a caller's or a vendor's behalf (`image_url`, webhook endpoints, upload URLs a vendor hands
//! back). Pure: it classifies addresses, it never resolves or connects.

use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The ports that may be contacted by default (`outbound.allow_ports`).
pub const DEFAULT_PORTS: [u16; 4] = [80, 443, 8080, 8443];

/// Decides which resolved addresses and ports may be contacted.
#[derive(Debug, Clone)]
pub struct AddressGuard {
    allow: Vec<IpNet>,
    ports: Vec<u16>,
}

impl Default for AddressGuard {
    fn default() -> Self {
        Self::new(Vec::new())
    }
}

impl AddressGuard {
    /// A guard that also permits these networks (at any port), and the [`DEFAULT_PORTS`].
    pub fn new(allow: Vec<IpNet>) -> Self {
        Self {
            allow,
            ports: DEFAULT_PORTS.to_vec(),
        }
    }

    /// The same guard permitting these ports instead (at addresses outside the allowed
    /// networks).
    pub fn with_ports(mut self, ports: Vec<u16>) -> Self {
        self.ports = ports;
        self
    }

    /// `Ok` when `port` may be contacted at `host` (a URL's host: a name, or an address in
    /// brackets or not): a port of the list, or any port at an address literal inside the
    /// allowed networks. A name must use a port of the list, whatever it resolves to.
    pub fn check_port(&self, host: &str, port: u16) -> Result<(), String> {
        if self.ports.contains(&port) {
            return Ok(());
        }
        let literal = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .ok()
            .map(unmapped);
        if literal.is_some_and(|ip| self.allow.iter().any(|net| net.contains(&ip))) {
            return Ok(());
        }
        let ports: Vec<String> = self.ports.iter().map(u16::to_string).collect();
        Err(format!(
            "port {port} is not allowed (outbound.allow_ports: {})",
            ports.join(", ")
        ))
    }

    /// `Ok` when the address may be contacted; else why not.
    pub fn check(&self, ip: IpAddr) -> Result<(), String> {
        let ip = unmapped(ip);
        if self.allow.iter().any(|net| net.contains(&ip)) {
            return Ok(());
        }
        match refused_kind(ip) {
            Some(kind) => Err(format!("{ip} (a {kind} address)")),
            None => Ok(()),
        }
    }

    /// Every address a host resolves to must pass, so that a name cannot hide a private address
    /// behind a public one. The error names the host and the refused address.
    pub fn check_all(&self, host: &str, addrs: &[SocketAddr]) -> Result<(), String> {
        for addr in addrs {
            self.check(addr.ip())
                .map_err(|why| format!("{host} resolves to {why}, which is not allowed"))?;
        }
        Ok(())
    }
}

/// An IPv4-mapped address (`::ffff:a.b.c.d`) as the IPv4 address it is.
fn unmapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The kind of address that is refused by default, if `ip` is one.
fn refused_kind(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => refused_v4(v4),
        IpAddr::V6(v6) => refused_v6(v6),
    }
}

fn refused_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    if ip == Ipv4Addr::new(169, 254, 169, 254)
        || ip == Ipv4Addr::new(100, 100, 100, 200)
        || ip == Ipv4Addr::new(168, 63, 129, 16)
    {
        Some("cloud metadata")
    } else if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_private() {
        Some("private")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if ip.is_unspecified() || a == 0 {
        Some("unspecified")
    } else if ip.is_broadcast() || ip.is_multicast() || a >= 240 {
        Some("broadcast, multicast or reserved")
    } else if a == 100 && (64..128).contains(&b) {
        Some("shared (carrier-grade NAT)")
    } else if (a == 192 && b == 0 && c == 0) || (a == 198 && (b == 18 || b == 19)) {
        Some("special-purpose")
    } else if ip.is_documentation() {
        Some("documentation")
    } else {
        None
    }
}

fn refused_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let segments = ip.segments();
    let first = segments[0];
    if ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
        Some("cloud metadata")
    } else if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_unspecified() {
        Some("unspecified")
    } else if segments[..6].iter().all(|&s| s == 0) {
        // ::/96, IPv4-compatible (deprecated): ::7f00:1 is 127.0.0.1 to some stacks.
        Some("IPv4-compatible (deprecated)")
    } else if first == 0x2002 {
        // 6to4 carries an IPv4 address in its next 32 bits; that address decides.
        let [a, b] = segments[1].to_be_bytes();
        let [c, d] = segments[2].to_be_bytes();
        refused_v4(Ipv4Addr::new(a, b, c, d)).map(|_| "6to4 for a refused IPv4")
    } else if first == 0x2001 && segments[1] == 0 {
        // Teredo tunnels to an IPv4 address (obfuscated in the last 32 bits).
        Some("Teredo")
    } else if first & 0xfe00 == 0xfc00 {
        Some("unique local (private)")
    } else if first & 0xffc0 == 0xfe80 {
        Some("link-local")
    } else if first & 0xffc0 == 0xfec0 {
        Some("site-local (deprecated)")
    } else if ip.is_multicast() {
        Some("multicast")
    } else if first == 0x2001 && ip.segments()[1] == 0x0db8 {
        Some("documentation")
    } else if first == 0x0064 && ip.segments()[1] == 0xff9b {
        // NAT64 can reach any IPv4 address, private ones included.
        Some("NAT64")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(ip: &str) -> bool {
        AddressGuard::default().check(ip.parse().unwrap()).is_err()
    }

    #[test]
    fn private_loopback_link_local_and_metadata_addresses_are_refused() {
        for ip in [
            "127.0.0.1",
            "10.0.0.8",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "169.254.1.1",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "fd00:ec2::254",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "168.63.129.16",
            "::7f00:1",
            "::a00:1",
            "::808:808",
            "2002:7f00:1::",
            "2002:a9fe:a9fe::1",
            "2002:c0a8:101::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001::1",
            "fec0::1",
            "feff::1",
        ] {
            assert!(refused(ip), "{ip} should be refused");
        }
        for ip in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "2002:808:808::1",
            "2001:4860::8888",
        ] {
            assert!(!refused(ip), "{ip} should be allowed");
        }
    }

    #[test]
    fn only_the_listed_ports_are_open_but_at_allowed_networks_any_is() {
        let guard = AddressGuard::new(vec!["127.0.0.0/8".parse().unwrap()]);
        for (host, port) in [
            ("example.com", 80),
            ("example.com", 443),
            ("example.com", 8443),
            ("127.0.0.1", 5432),
            ("[::ffff:127.0.0.1]", 6379),
        ] {
            assert!(guard.check_port(host, port).is_ok(), "{host}:{port}");
        }
        for (host, port) in [
            ("example.com", 22),
            ("example.com", 5432),
            ("8.8.8.8", 25),
            ("[2606:4700::1111]", 3306),
            // A name is not trusted with another port, whatever it resolves to.
            ("localhost", 5432),
        ] {
            let err = guard.check_port(host, port).unwrap_err();
            assert!(
                err.starts_with(&format!("port {port} is not allowed")),
                "{err}"
            );
        }
        let only_https = AddressGuard::default().with_ports(vec![443]);
        assert!(only_https.check_port("example.com", 443).is_ok());
        let err = only_https.check_port("example.com", 80).unwrap_err();
        assert_eq!(err, "port 80 is not allowed (outbound.allow_ports: 443)");
    }

    #[test]
    fn the_allow_list_opens_only_its_networks() {
        let guard = AddressGuard::new(vec!["127.0.0.0/8".parse().unwrap()]);
        assert!(guard.check("127.0.0.1".parse().unwrap()).is_ok());
        assert!(guard.check("::ffff:127.0.0.1".parse().unwrap()).is_ok());
        assert!(guard.check("10.0.0.1".parse().unwrap()).is_err());
        assert!(guard.check("169.254.169.254".parse().unwrap()).is_err());
    }
}
