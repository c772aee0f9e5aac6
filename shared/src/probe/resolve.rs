//! The name resolved as the application resolves it: with the VPC's
//! resolver (the system configuration, `/etc/resolv.conf` in Lambda), or the
//! nameserver `BALLAST_PROBE_RESOLVER` names. The CNAME chain is kept: it
//! says which endpoint the name leads to.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::TokioResolver;

use super::failed;
use crate::proof::{Failure, Stage};

/// Which nameserver answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolver {
    /// The system's (the VPC resolver in Lambda).
    System,
    /// This nameserver (`BALLAST_PROBE_RESOLVER=<ip>[:<port>]`).
    At(SocketAddr),
}

impl Resolver {
    /// `<ip>` or `<ip>:<port>` (port 53 by default).
    pub fn parse(value: &str) -> Option<Resolver> {
        let v = value.trim();
        if let Ok(a) = v.parse::<SocketAddr>() {
            return Some(Resolver::At(a));
        }
        v.parse::<IpAddr>()
            .ok()
            .map(|ip| Resolver::At(SocketAddr::new(ip, 53)))
    }

    fn build(&self, limit: Duration) -> Result<TokioResolver, Failure> {
        let unusable = |e: &dyn std::fmt::Display| failed(Stage::Dns, format!("no resolver: {e}"));
        let (config, mut opts) = match self {
            Resolver::System => {
                hickory_resolver::system_conf::read_system_conf().map_err(|e| unusable(&e))?
            }
            Resolver::At(a) => {
                let mut udp = ConnectionConfig::udp();
                udp.port = a.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = a.port();
                let server = NameServerConfig::new(a.ip(), true, vec![udp, tcp]);
                (
                    ResolverConfig::from_parts(None, vec![], vec![server]),
                    ResolverOpts::default(),
                )
            }
        };
        opts.timeout = limit;
        opts.attempts = 1;
        // Every probe asks afresh: a cached answer is not what the
        // application's next connection gets.
        opts.cache_size = 0;
        TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
            .with_options(opts)
            .build()
            .map_err(|e| unusable(&e))
    }

    /// The CNAME chain `name` leads through, and its addresses.
    pub(crate) async fn resolve(
        &self,
        name: &str,
        limit: Duration,
    ) -> Result<(Vec<String>, Vec<IpAddr>), Failure> {
        let resolver = self.build(limit)?;
        // Fully qualified: no search domain is tried.
        let fqdn = format!("{}.", name.trim_end_matches('.'));
        let answer = tokio::time::timeout(limit * 2, resolver.lookup_ip(fqdn.as_str()))
            .await
            .map_err(|_| {
                failed(
                    Stage::Dns,
                    format!(
                        "the resolver did not answer for {name} within {:.1}s",
                        limit.as_secs_f64() * 2.0
                    ),
                )
            })?
            .map_err(|e| failed(Stage::Dns, format!("{name} does not resolve: {e}")))?;
        let chain = answer
            .as_lookup()
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::CNAME(target) => {
                    Some(target.0.to_string().trim_end_matches('.').to_string())
                }
                _ => None,
            })
            .collect();
        Ok((chain, answer.iter().collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resolver_is_an_address_with_an_optional_port() {
        assert_eq!(
            Resolver::parse("10.0.0.2"),
            Some(Resolver::At("10.0.0.2:53".parse().unwrap()))
        );
        assert_eq!(
            Resolver::parse(" 127.0.0.1:5353 "),
            Some(Resolver::At("127.0.0.1:5353".parse().unwrap()))
        );
        assert_eq!(
            Resolver::parse("[::1]:53"),
            Some(Resolver::At("[::1]:53".parse().unwrap()))
        );
        assert_eq!(Resolver::parse("dns.example.com"), None);
    }
}
