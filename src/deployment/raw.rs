//! The serde mirror of the deployment file: every value kept with its span, nothing checked yet.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

pub type Key = Spanned<String>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDeployment {
    pub name: Option<Spanned<String>>,
    #[serde(default)]
    pub zones: BTreeMap<Key, Spanned<RawZone>>,
    #[serde(default)]
    pub nodes: BTreeMap<Key, Spanned<RawNode>>,
    #[serde(default)]
    pub units: BTreeMap<Key, Spanned<RawUnit>>,
    #[serde(default)]
    pub services: BTreeMap<Key, Spanned<RawService>>,
    #[serde(default)]
    pub firewalls: BTreeMap<Key, Spanned<RawFirewall>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawZone {
    pub cidrs: Spanned<Vec<Spanned<String>>>,
    pub roles: Spanned<Vec<Spanned<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNode {
    pub address: Spanned<String>,
    pub zone: Spanned<String>,
    pub hac: Option<bool>,
    #[serde(default)]
    pub variables: BTreeMap<Key, Spanned<i64>>,
    pub windows_excluded_ports: Option<Spanned<RawExcluded>>,
    /// `scc = false`: the node runs no SCC component (an SBC, a database, a mail or jump host).
    pub scc: Option<Spanned<bool>>,
    /// `[nodes.NAME.trunk]`: the node is a SIP trunk peer (an SBC or a carrier's peer).
    pub trunk: Option<Spanned<RawTrunk>>,
    /// `[nodes.NAME.interfaces]`: interface name = the zone behind it, or a list of zones
    /// (checked in validation).
    #[serde(default)]
    pub interfaces: BTreeMap<Key, Spanned<toml::Value>>,
}

/// A trunk peer's side of the trunk: its SIP port per transport it speaks, and its media range.
/// Each a port (`5060` or `"5060"`) or a range `"16384-32767"`, checked in validation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTrunk {
    pub udp: Option<Spanned<toml::Value>>,
    pub tcp: Option<Spanned<toml::Value>>,
    pub tls: Option<Spanned<toml::Value>>,
    pub media: Option<Spanned<toml::Value>>,
}

/// A node's Windows excluded port ranges, per transport, as `netsh int ipv4 show
/// excludedportrange protocol=tcp|udp` lists them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExcluded {
    #[serde(default)]
    pub tcp: Vec<Spanned<String>>,
    #[serde(default)]
    pub udp: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUnit {
    pub address: Spanned<String>,
    pub packages: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    pub instances: Vec<Spanned<String>>,
    #[serde(default)]
    pub variables: BTreeMap<Key, Spanned<i64>>,
}

/// A site service (`[services.NAME]`): a flow the catalog does not know (RDP, SQL Server, IMAP…).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawService {
    pub transport: Spanned<String>,
    /// A port (`"3389"` or `3389`) or a range `"5985-5986"`: checked in validation.
    pub ports: Spanned<toml::Value>,
    pub from: Spanned<Vec<Spanned<String>>>,
    pub to: Spanned<Vec<Spanned<String>>>,
    pub note: Option<Spanned<String>>,
}

/// A network firewall (appliance) between zones (`[firewalls.NAME]`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFirewall {
    pub zones: Spanned<Vec<Spanned<String>>>,
    pub platforms: Option<Spanned<Vec<Spanned<String>>>>,
    /// The appliance's own name for a zone, by zone name.
    #[serde(default)]
    pub names: BTreeMap<Key, Spanned<String>>,
}

/// Map entries in the order the file gives them (a `BTreeMap` sorts by name; spans restore order).
pub fn in_file_order<V>(map: BTreeMap<Key, V>) -> Vec<(Key, V)> {
    let mut entries: Vec<(Key, V)> = map.into_iter().collect();
    entries.sort_by_key(|(k, _)| k.span().start);
    entries
}
