//! Audit of a live ruleset: one reader per export format into one small rule model ([`Ruleset`]),
//! one evaluator ("does this packet pass, and which rule decides"), and the comparison with the
//! plan's flows ([`compare`]).

pub mod appliance;
mod cloud;
pub mod compare;
pub mod diff;
mod diff_windows;
mod firewalld;
mod firewalld_xml;
mod iptables;
mod nft;
mod nft_text;
pub mod windows;

use std::fmt;
use std::net::IpAddr;

use crate::catalog::Transport;

/// The export formats the readers understand, detected from the content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// `nft -j list ruleset`
    NftJson,
    /// `nft list ruleset` (or `nft -a list ruleset`, or a hand-written `nftables.conf`)
    NftText,
    /// `iptables-save`
    IptablesSave,
    /// `ip6tables-save`
    Ip6tablesSave,
    /// `Get-NetFirewallRule … | ConvertTo-Json` (see docs/audit.md for the exact line)
    WindowsJson,
    /// `aws ec2 describe-security-groups`
    AwsJson,
    /// `firewall-cmd --list-all-zones` with the services' definitions (docs/audit.md)
    FirewalldText,
    /// firewalld's XML files: a copy of /etc/firewalld (over /usr/lib/firewalld), or one zone
    FirewalldXml,
    /// Cisco ASA `show running-config`
    CiscoAsa,
    /// PAN-OS configuration XML (`show config running` or an exported `running-config.xml`)
    PanosXml,
    /// PAN-OS `set` format (`set cli config-output-format set`, `show`)
    PanosSet,
    /// FortiOS `show firewall …` / a configuration backup
    FortiOs,
    /// Junos `show configuration` (hierarchical)
    Junos,
    /// Junos `show configuration | display set`
    JunosSet,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::NftJson => "nftables-json",
            Format::NftText => "nftables-text",
            Format::IptablesSave => "iptables-save",
            Format::Ip6tablesSave => "ip6tables-save",
            Format::WindowsJson => "windows-json",
            Format::AwsJson => "aws-json",
            Format::FirewalldText => "firewalld",
            Format::FirewalldXml => "firewalld-xml",
            Format::CiscoAsa => "cisco-asa",
            Format::PanosXml => "panos-xml",
            Format::PanosSet => "panos-set",
            Format::FortiOs => "fortios",
            Format::Junos => "junos",
            Format::JunosSet => "junos-set",
        }
    }
}

/// Why an export cannot be read: located where the text allows it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditError {
    #[error("{file}:{line}:{col}: {what}\n  hint: {hint}")]
    Syntax {
        file: String,
        line: usize,
        col: usize,
        what: String,
        hint: String,
    },
    #[error("{file}: {what}\n  hint: {hint}")]
    Content {
        file: String,
        what: String,
        hint: String,
    },
}

/// An export as the readers' "is this mine?" tests see it: the text, and its JSON parsed once
/// when it looks like JSON.
struct Input<'a> {
    text: &'a str,
    json: Option<serde_json::Value>,
}

/// One export format's reader: a cheap test on the content, and the reader itself.
struct Reader {
    mine: fn(&Input) -> bool,
    read: fn(&str, &Input) -> Result<Ruleset, AuditError>,
}

fn json_has(i: &Input, key: &str) -> bool {
    i.json.as_ref().is_some_and(|v| v.get(key).is_some())
}

fn json_of<'a>(i: &'a Input) -> &'a serde_json::Value {
    i.json.as_ref().unwrap_or(&serde_json::Value::Null)
}

/// Every reader, in the order their tests are asked: the first that claims the content reads
/// it. A new format adds its file and one line here.
const READERS: &[Reader] = &[
    Reader {
        mine: |i| json_has(i, "nftables"),
        read: |f, i| nft::read(f, json_of(i)),
    },
    Reader {
        mine: |i| json_has(i, "SecurityGroups"),
        read: |f, i| cloud::read_aws(f, json_of(i)),
    },
    Reader {
        mine: |i| i.json.as_ref().is_some_and(windows::looks_windows),
        read: |f, i| windows::read(f, json_of(i)),
    },
    Reader {
        mine: |i| i.json.is_none() && appliance::asa::looks_asa(i.text),
        read: |f, i| appliance::asa::read(f, i.text),
    },
    Reader {
        mine: |i| i.json.is_none() && appliance::panos::looks_xml(i.text),
        read: |f, i| appliance::panos::read_xml(f, i.text),
    },
    Reader {
        mine: |i| i.json.is_none() && appliance::panos::looks_set(i.text),
        read: |f, i| appliance::panos::read_set(f, i.text),
    },
    Reader {
        mine: |i| i.json.is_none() && appliance::junos::looks_set(i.text),
        read: |f, i| appliance::junos::read_set(f, i.text),
    },
    Reader {
        mine: |i| i.json.is_none() && appliance::junos::looks_hierarchical(i.text),
        read: |f, i| appliance::junos::read_hierarchical(f, i.text),
    },
    Reader {
        mine: |i| i.json.is_none() && appliance::fortios::looks_fortios(i.text),
        read: |f, i| appliance::fortios::read(f, i.text),
    },
    Reader {
        mine: |i| i.json.is_none() && firewalld_xml::looks_xml(i.text),
        read: |f, i| firewalld_xml::read_one(f, i.text),
    },
    Reader {
        mine: |i| i.json.is_none() && firewalld::looks_firewalld(i.text),
        read: |f, i| firewalld::read(f, i.text),
    },
    Reader {
        mine: |i| i.json.is_none() && iptables::looks_save(i.text),
        read: |f, i| iptables::read(f, i.text),
    },
    Reader {
        mine: |i| i.json.is_none() && nft_text::looks_nft(i.text),
        read: |f, i| nft_text::read(f, i.text),
    },
];

/// Reads an export of any supported format, detected from its content once, by the first
/// reader of [`READERS`] that claims it.
pub fn read(name: &str, text: &str) -> Result<Ruleset, AuditError> {
    let trimmed = text.trim_start();
    let json = if trimmed.starts_with('{') || trimmed.starts_with('[') {
        Some(serde_json::from_str(text).map_err(|e| {
            AuditError::Syntax {
                file: name.to_string(),
                line: e.line(),
                col: e.column(),
                what: format!("not valid JSON: {e}"),
                hint: "give the unmodified output of `nft -j list ruleset`, `aws ec2 \
                       describe-security-groups` or the PowerShell export in docs/audit.md"
                    .into(),
            }
        })?)
    } else {
        None
    };
    let input = Input { text, json };
    if let Some(r) = READERS.iter().find(|r| (r.mine)(&input)) {
        return (r.read)(name, &input);
    }
    if input.json.is_some() {
        return Err(AuditError::Content {
            file: name.to_string(),
            what: "JSON of an unknown shape: no `nftables`, `SecurityGroups` or Windows \
                   firewall rule objects"
                .into(),
            hint: "see docs/audit.md for the supported exports".into(),
        });
    }
    Err(AuditError::Content {
        file: name.to_string(),
        what: "unrecognised ruleset format".into(),
        hint: "supported: `nft -j list ruleset`, `nft list ruleset`, `iptables-save`, `ip6tables-save`, the \
               Windows Firewall JSON export and `aws ec2 describe-security-groups` (docs/audit.md)"
            .into(),
    })
}

/// Whether an export can answer for the scope: Windows Firewall filters traffic to and from its
/// own computer, never traffic routed between zones, so its export cannot be audited as the
/// firewall between zones (`--network`).
pub fn fits_scope(file: &str, rs: &Ruleset, network: bool) -> Result<(), AuditError> {
    if network && rs.format == Format::WindowsJson {
        return Err(AuditError::Content {
            file: file.to_string(),
            what: "a Windows Firewall export cannot be audited with --network: Windows Firewall \
                   filters the traffic to and from its own computer, never traffic between zones"
                .into(),
            hint: "audit it with --node NAME for the server it was exported from".into(),
        });
    }
    if !network && appliance::is_appliance(rs.format) {
        return Err(AuditError::Content {
            file: file.to_string(),
            what: format!(
                "a {} configuration cannot be audited with --node: the appliance filters the \
                 traffic between zones, not a server's own",
                rs.format.as_str()
            ),
            hint: "audit it with --network (and --firewall NAME when the deployment declares \
                   several firewalls)"
                .into(),
        });
    }
    Ok(())
}

/// One file of a firewalld configuration directory, as the caller read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigFile {
    /// True for `/usr/lib/firewalld` (the shipped files), false for `/etc/firewalld` (which
    /// overrides a shipped file of the same kind and name).
    pub system: bool,
    /// The path inside that directory: `firewalld.conf`, `zones/public.xml`, `ipsets/x.xml`.
    pub rel: String,
    /// The path messages name.
    pub display: String,
    pub text: String,
}

/// Reads a firewalld configuration from its files (docs/audit.md: which files, which wins).
pub fn read_firewalld_dir(name: &str, files: &[ConfigFile]) -> Result<Ruleset, AuditError> {
    firewalld_xml::read_dir(name, files)
}

/// Export text made safe for one line of output: control, bidirectional-formatting and line
/// separator characters escaped (`\u{202e}`), as every sink of `crate::safe` forbids them.
pub fn clean(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            if crate::safe::is_forbidden(c) {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

/// Export text quoted in an error message: one line, forbidden characters escaped, at most 80
/// characters (the input is hostile: it must not reach the terminal raw).
pub fn clip(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(80)
        .flat_map(|c| {
            if crate::safe::is_forbidden(c) {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect();
    if text.chars().count() > 80 {
        out.push('…');
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The model.

/// An address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn of(a: &IpAddr) -> Family {
        match a {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// The largest address of the family as a number.
    pub fn max(self) -> u128 {
        match self {
            Family::V4 => u128::from(u32::MAX),
            Family::V6 => u128::MAX,
        }
    }
}

/// An address as a number, with its family.
pub fn addr_num(a: &IpAddr) -> u128 {
    match a {
        IpAddr::V4(v) => u128::from(u32::from(*v)),
        IpAddr::V6(v) => u128::from(*v),
    }
}

pub fn num_addr(family: Family, n: u128) -> IpAddr {
    match family {
        Family::V4 => IpAddr::V4((n as u32).into()),
        Family::V6 => IpAddr::V6(n.into()),
    }
}

/// A closed interval of addresses of one family (a CIDR, an `iprange`, a set element).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span {
    pub family: Family,
    pub lo: u128,
    pub hi: u128,
}

impl Span {
    pub fn net(n: &ipnet::IpNet) -> Span {
        Span {
            family: Family::of(&n.addr()),
            lo: addr_num(&n.network()),
            hi: addr_num(&n.broadcast()),
        }
    }

    pub fn contains(&self, a: &IpAddr) -> bool {
        Family::of(a) == self.family && (self.lo..=self.hi).contains(&addr_num(a))
    }

    /// The smallest list of CIDRs that covers exactly this span.
    pub fn cidrs(&self) -> Vec<ipnet::IpNet> {
        let bits: u32 = match self.family {
            Family::V4 => 32,
            Family::V6 => 128,
        };
        let mut out = Vec::new();
        let mut lo = self.lo;
        loop {
            // The largest block aligned at `lo` that stays inside the span.
            let mut size_bits = if lo == 0 {
                bits
            } else {
                lo.trailing_zeros().min(bits)
            };
            while size_bits > 0 {
                let last = if size_bits >= 128 {
                    u128::MAX
                } else {
                    lo + ((1u128 << size_bits) - 1)
                };
                if last <= self.hi && last >= lo {
                    break;
                }
                size_bits -= 1;
            }
            let prefix = (bits - size_bits) as u8;
            let net = ipnet::IpNet::new(num_addr(self.family, lo), prefix).expect("valid prefix");
            out.push(net);
            let last = if size_bits >= 128 {
                u128::MAX
            } else {
                lo + ((1u128 << size_bits) - 1)
            };
            if last >= self.hi {
                break;
            }
            lo = last + 1;
        }
        out
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nets = self.cidrs();
        let text: Vec<String> = nets.iter().map(crate::flows::net_text).collect();
        f.write_str(&text.join(","))
    }
}

/// An address interval as the report names it: an address, a CIDR, or `first-last`.
pub fn span_text(s: &Span) -> String {
    match s.cidrs().as_slice() {
        [one] => crate::flows::net_text(one),
        _ => format!("{}-{}", num_addr(s.family, s.lo), num_addr(s.family, s.hi)),
    }
}

/// The first address of a report's address text (an address, a CIDR or `first-last`).
pub fn span_start(text: &str) -> Option<IpAddr> {
    let first = text.split_once('-').map_or(text, |(a, _)| a);
    first
        .parse()
        .ok()
        .or_else(|| first.parse::<ipnet::IpNet>().ok().map(|n| n.network()))
}

/// The addresses a condition tests (`ip saddr { … }`, a named set, an ipset): the intervals as
/// given, and a sorted, merged copy that answers membership by binary search. Cloning shares
/// both (a named set looked up by 10,000 rules is held once).
#[derive(Clone, PartialEq, Eq)]
pub struct Addrs(std::sync::Arc<(Vec<Span>, Vec<Span>)>);

impl Addrs {
    pub fn new(spans: Vec<Span>) -> Addrs {
        // A reversed interval holds no address (as a scan would find).
        let mut merged: Vec<Span> = spans.iter().copied().filter(|s| s.lo <= s.hi).collect();
        merged.sort_unstable();
        let mut out: Vec<Span> = Vec::with_capacity(merged.len());
        for x in merged {
            match out.last_mut() {
                Some(m) if m.family == x.family && x.lo <= m.hi.saturating_add(1) => {
                    m.hi = m.hi.max(x.hi)
                }
                _ => out.push(x),
            }
        }
        Addrs(std::sync::Arc::new((spans, out)))
    }

    pub fn contains(&self, a: &IpAddr) -> bool {
        self.contains_num(Family::of(a), addr_num(a))
    }

    fn contains_num(&self, family: Family, n: u128) -> bool {
        let merged = &self.0.1;
        let i = merged.partition_point(|s| (s.family, s.lo) <= (family, n));
        i > 0 && merged[i - 1].family == family && merged[i - 1].hi >= n
    }

    /// Whether every address of `s` is in the set.
    pub fn covers(&self, s: &Span) -> bool {
        let merged = &self.0.1;
        let i = merged.partition_point(|m| (m.family, m.lo) <= (s.family, s.lo));
        i > 0 && merged[i - 1].family == s.family && merged[i - 1].hi >= s.hi
    }

    /// The merged intervals, sorted (what cuts a range into pieces that the set treats alike).
    pub fn merged(&self) -> &[Span] {
        &self.0.1
    }

    /// Which shared set this is: equal for the clones of one set.
    fn id(&self) -> usize {
        std::sync::Arc::as_ptr(&self.0) as *const () as usize
    }
}

impl std::ops::Deref for Addrs {
    type Target = [Span];
    fn deref(&self) -> &[Span] {
        &self.0.0
    }
}

impl fmt::Debug for Addrs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl From<Vec<Span>> for Addrs {
    fn from(v: Vec<Span>) -> Addrs {
        Addrs::new(v)
    }
}

/// The ports a condition tests: the intervals as given, and a sorted, merged copy for binary
/// search; shared as [`Addrs`] is.
#[derive(Clone, PartialEq, Eq)]
pub struct Ports(std::sync::Arc<(PortList, PortList)>);

type PortList = Vec<(u16, u16)>;

impl Ports {
    pub fn new(list: Vec<(u16, u16)>) -> Ports {
        // A reversed interval holds no port (as a scan of `lo..=hi` would find).
        let mut sorted: Vec<(u16, u16)> = list.iter().copied().filter(|(a, b)| a <= b).collect();
        sorted.sort_unstable();
        let mut out: Vec<(u16, u16)> = Vec::with_capacity(sorted.len());
        for (lo, hi) in sorted {
            match out.last_mut() {
                Some(m) if u32::from(lo) <= u32::from(m.1) + 1 => m.1 = m.1.max(hi),
                _ => out.push((lo, hi)),
            }
        }
        Ports(std::sync::Arc::new((list, out)))
    }

    /// The merged intervals, sorted.
    pub fn merged(&self) -> &[(u16, u16)] {
        &self.0.1
    }

    pub fn contains(&self, p: u16) -> bool {
        let merged = &self.0.1;
        let i = merged.partition_point(|r| r.0 <= p);
        i > 0 && merged[i - 1].1 >= p
    }

    /// Which shared set this is: equal for the clones of one set.
    fn id(&self) -> usize {
        std::sync::Arc::as_ptr(&self.0) as *const () as usize
    }
}

impl std::ops::Deref for Ports {
    type Target = [(u16, u16)];
    fn deref(&self) -> &[(u16, u16)] {
        &self.0.0
    }
}

impl fmt::Debug for Ports {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl From<Vec<(u16, u16)>> for Ports {
    fn from(v: Vec<(u16, u16)>) -> Ports {
        Ports::new(v)
    }
}

/// Hooks a base chain can sit on (the ones that see inbound new connections).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Hook {
    /// netdev ingress: before everything else.
    Ingress,
    Prerouting,
    Input,
    Forward,
}

/// One condition of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cond {
    /// The packet is of this family (`ip saddr` in an inet table implies IPv4).
    Family(Family),
    Saddr(Addrs),
    Daddr(Addrs),
    /// The input interface by name (`lo` is the only name the audit can answer for).
    Iif(String),
    Oif(String),
    /// Layer-4 protocol numbers (6 TCP, 17 UDP).
    Proto(Vec<u8>),
    Sport(Ports),
    Dport(Ports),
    /// `dport & 1 == bit`: a parity test.
    DportParity(u8),
    /// Connection tracking state; the set of states named. A new connection is `new`.
    CtState(Vec<String>),
    /// A TCP SYN without ACK (`--syn`): true for the first packet of a TCP connection.
    Syn,
    /// A lookup of concatenated fields in a set: `ip daddr . tcp dport @servers_tcp_v4`.
    Concat(Concat),
    /// An appliance's zone, `nameif` or interface where the packet enters (`output`: leaves),
    /// one of `names` (see [`appliance::Sides`]).
    Side {
        output: bool,
        names: Vec<String>,
    },
    /// The packet leaves an appliance by the zone it entered.
    SameSide,
    /// A construct the audit cannot evaluate, named as the export wrote it.
    Unknown(String),
}

impl Cond {
    /// The constructors the readers use: a list of intervals becomes a shared, searchable set.
    pub fn saddr(spans: impl Into<Addrs>) -> Cond {
        Cond::Saddr(spans.into())
    }
    pub fn daddr(spans: impl Into<Addrs>) -> Cond {
        Cond::Daddr(spans.into())
    }
    pub fn sport(list: impl Into<Ports>) -> Cond {
        Cond::Sport(list.into())
    }
    pub fn dport(list: impl Into<Ports>) -> Cond {
        Cond::Dport(list.into())
    }
}

/// A packet field that a concatenation keys on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Saddr,
    Daddr,
    Sport,
    Dport,
}

/// A set element as nft writes it: `10.88.1.100 . 21002`, `10.20.0.0/16 . 8000-8400`.
pub fn element_text(fields: &[Field], family: Option<Family>, b: &[(u128, u128)]) -> String {
    let parts: Vec<String> = fields
        .iter()
        .zip(b)
        .map(|(f, &(lo, hi))| match (f, family) {
            (Field::Saddr | Field::Daddr, Some(family)) => span_text(&Span { family, lo, hi }),
            _ if lo == hi => lo.to_string(),
            _ => format!("{lo}-{hi}"),
        })
        .collect();
    parts.join(" . ")
}

/// A concatenated set: a union of boxes, one closed interval per field (addresses as numbers of
/// `family`, ports); a packet matches when one box contains each of its fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Concat {
    pub fields: Vec<Field>,
    /// The family of the address fields (None: only ports).
    pub family: Option<Family>,
    /// Sorted by the first field's start, so that a lookup stops at the first box beyond it.
    pub elems: Vec<Vec<(u128, u128)>>,
    /// For each box, the greatest end of the first field among it and the boxes before it: a
    /// lookup walking back from the last box that starts at or before the value stops where no
    /// earlier box reaches the value (disjoint elements: only the boxes that hold it are seen).
    reach: Vec<u128>,
    /// The elements' comments (the generator names each element's component and port id).
    pub comments: std::collections::BTreeMap<Vec<(u128, u128)>, String>,
    /// A named set as `family table name` (what `add element` names); None: an anonymous set.
    pub set: Option<String>,
}

impl Concat {
    pub fn new(
        fields: Vec<Field>,
        family: Option<Family>,
        mut elems: Vec<Vec<(u128, u128)>>,
        set: Option<String>,
    ) -> Concat {
        elems.sort_unstable();
        let mut c = Concat {
            family,
            fields,
            elems,
            reach: Vec::new(),
            comments: Default::default(),
            set,
        };
        c.index();
        c
    }

    /// Rebuilds the lookup order after the boxes change.
    pub fn index(&mut self) {
        self.elems.sort_unstable();
        let mut max = 0;
        self.reach = self
            .elems
            .iter()
            .map(|e| {
                max = max.max(e[0].1);
                max
            })
            .collect();
    }

    fn value(f: Field, p: &Packet) -> Option<u128> {
        match f {
            Field::Saddr => Some(addr_num(&p.src)),
            Field::Daddr => Some(addr_num(&p.dst)),
            Field::Sport => p.sport.map(u128::from),
            Field::Dport => Some(u128::from(p.dport)),
        }
    }

    /// The boxes whose first field can contain `first` (all of them when it is unknown), and
    /// perhaps a few more.
    fn candidates(&self, first: Option<u128>) -> impl Iterator<Item = &Vec<(u128, u128)>> {
        let (end, v) = match first {
            Some(v) => (self.elems.partition_point(|e| e[0].0 <= v), v),
            None => (self.elems.len(), 0),
        };
        let reach = &self.reach;
        (0..end)
            .rev()
            .take_while(move |&i| reach[i] >= v)
            .map(|i| &self.elems[i])
    }

    /// The first box that holds for the packet, as nft writes an element (for the report).
    fn holding(&self, p: &Packet) -> Option<String> {
        let values: Vec<Option<u128>> = self.fields.iter().map(|f| Concat::value(*f, p)).collect();
        let b = self.candidates(values[0]).find(|e| {
            e.iter()
                .zip(&values)
                .all(|((lo, hi), v)| v.is_some_and(|v| (*lo..=*hi).contains(&v)))
        })?;
        let mut text = element_text(&self.fields, self.family, b);
        if let Some(c) = self.comments.get(b) {
            text.push_str(&format!(" comment \"{}\"", clip(c)));
        }
        Some(text)
    }

    fn test(&self, p: &Packet) -> Tri {
        if self.family.is_some_and(|f| f != Family::of(&p.src)) {
            return Tri::No;
        }
        let values: Vec<Option<u128>> = self.fields.iter().map(|f| Concat::value(*f, p)).collect();
        let mut unknown = false;
        for e in self.candidates(values[0]) {
            let mut all = true;
            let mut open = false;
            for ((lo, hi), v) in e.iter().zip(&values) {
                match v {
                    Some(v) if (*lo..=*hi).contains(v) => {}
                    Some(_) => {
                        all = false;
                        break;
                    }
                    // An unknown client port: only a box over every port surely holds.
                    None if *hi >= 65535 && *lo <= 1 => {}
                    None => open = true,
                }
            }
            if all && !open {
                return Tri::Yes;
            }
            unknown |= all && open;
        }
        if unknown {
            Tri::Unknown(
                "source port in a concatenated set (the client's port is not known)".into(),
            )
        } else {
            Tri::No
        }
    }

    /// The destination port intervals of the boxes whose address fields hold for `src` and
    /// `dst` (the boxes that can cut a row of ports).
    fn dports_for(&self, src: u128, dst: u128, out: &mut Vec<u32>) {
        let Some(d) = self.fields.iter().position(|f| *f == Field::Dport) else {
            return;
        };
        let first = match self.fields[0] {
            Field::Saddr => Some(src),
            Field::Daddr => Some(dst),
            _ => None,
        };
        'boxes: for e in self.candidates(first) {
            for (f, (lo, hi)) in self.fields.iter().zip(e) {
                let v = match f {
                    Field::Saddr => src,
                    Field::Daddr => dst,
                    _ => continue,
                };
                if v < *lo || v > *hi {
                    continue 'boxes;
                }
            }
            out.push(e[d].0 as u32);
            out.push(e[d].1 as u32 + 1);
        }
    }
}

/// A condition, possibly negated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    pub cond: Cond,
    pub negate: bool,
}

impl Match {
    pub fn is(cond: Cond) -> Match {
        Match {
            cond,
            negate: false,
        }
    }

    pub fn not(cond: Cond, negate: bool) -> Match {
        Match { cond, negate }
    }
}

/// What a rule does when every condition holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Accept,
    Drop,
    Reject,
    /// Index of the chain in [`Ruleset::chains`].
    Jump(usize),
    Goto(usize),
    Return,
    /// No verdict (counter, log, mark): evaluation goes on with the next rule.
    Continue,
    /// A verdict map: the first entry whose ports contain the destination port decides.
    DportMap(Vec<((u16, u16), Action)>),
    /// A target or statement the audit cannot evaluate.
    Unknown(String),
}

/// One rule: conditions, an action, and where it came from (for the report).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub matches: Vec<Match>,
    pub action: Action,
    /// How the report names the rule: `inet filter input handle 7: tcp dport 22 accept`,
    /// `line 12: -A INPUT -p tcp --dport 22 -j ACCEPT`, a Windows rule's name…
    pub origin: String,
    /// What names the rule to its own tool, for `firewall --diff`: nft's handle, the iptables
    /// rule after `-A CHAIN`; empty for the other formats.
    pub spec: String,
}

/// Where a base chain hooks in and what happens to packets that reach its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Base {
    pub hooks: Vec<Hook>,
    pub priority: i32,
    /// The families whose packets the chain sees.
    pub families: Vec<Family>,
    /// True: accept at the end of the chain; false: drop.
    pub policy_accept: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    /// `inet filter input`, `filter INPUT`, `Windows Firewall (inbound)`…
    pub name: String,
    pub base: Option<Base>,
    pub rules: Vec<Rule>,
}

/// A whole ruleset: every chain, base chains evaluated in hook and priority order, each of which
/// must accept (nftables and iptables semantics; the Windows and AWS readers build one chain that
/// expresses their platform's semantics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ruleset {
    pub format: Format,
    pub chains: Vec<Chain>,
    /// The families the export covers at all (an `iptables-save` says nothing about IPv6).
    pub families: Vec<Family>,
}

/// A new connection's first packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub transport: Transport,
    /// `None`: any client port (the audit does not know the client's ephemeral port).
    pub sport: Option<u16>,
    pub dport: u16,
    /// Input (to the host) or Forward (through it).
    pub hook: Hook,
    /// Where it enters and leaves an appliance, by the appliance's names (unknown for hosts).
    pub sides: appliance::Sides,
}

/// The answer for one packet.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    Accept,
    Drop,
    /// The packet reached a construct the audit cannot evaluate (named).
    Undecided(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Decision {
    pub outcome: Outcome,
    /// The deciding rule's origin, or the policy of the chain whose end was reached.
    pub rule: String,
    /// Where: the chain's index, and the rule's index in it (None: the chain's policy).
    pub at: Option<(usize, Option<usize>)>,
}

/// Deepest jump nesting followed; deeper (a loop in a hand-made export) is "cannot decide".
const MAX_DEPTH: usize = 64;

enum Tri {
    Yes,
    No,
    Unknown(String),
}

fn ports_contain(list: &[(u16, u16)], p: u16) -> bool {
    list.iter().any(|(lo, hi)| (*lo..=*hi).contains(&p))
}

fn proto_number(t: Transport) -> u8 {
    match t {
        Transport::Tcp => 6,
        Transport::Udp => 17,
    }
}

fn test(cond: &Cond, p: &Packet) -> Tri {
    let yes = |b: bool| if b { Tri::Yes } else { Tri::No };
    match cond {
        Cond::Family(f) => yes(Family::of(&p.src) == *f),
        Cond::Saddr(s) => yes(s.contains(&p.src)),
        Cond::Daddr(s) => yes(s.contains(&p.dst)),
        Cond::Iif(name) | Cond::Oif(name) => {
            let output = matches!(cond, Cond::Oif(_));
            if name == "lo" {
                // Traffic from a zone never arrives on (or is forwarded to) loopback.
                Tri::No
            } else if output && p.hook == Hook::Input {
                // No output interface exists yet for traffic to the host itself.
                Tri::No
            } else {
                Tri::Unknown(format!(
                    "{} interface `{name}` (which interface a zone's traffic uses is not known)",
                    if output { "output" } else { "input" }
                ))
            }
        }
        Cond::Proto(list) => yes(list.contains(&proto_number(p.transport))),
        Cond::Sport(list) => match p.sport {
            Some(s) => yes(list.contains(s)),
            None if list.iter().any(|r| *r == (0, 65535) || *r == (1, 65535)) => Tri::Yes,
            None => Tri::Unknown("source port match (the client's port is not known)".into()),
        },
        Cond::Dport(list) => yes(list.contains(p.dport)),
        Cond::DportParity(bit) => yes(u8::from(p.dport % 2 == 1) == *bit),
        Cond::CtState(states) => yes(states.iter().any(|s| s == "new")),
        Cond::Syn => yes(p.transport == Transport::Tcp),
        Cond::Concat(c) => c.test(p),
        Cond::Side { output, names } => match appliance::side_holds(*output, names, &p.sides) {
            Ok(b) => yes(b),
            Err(what) => Tri::Unknown(what),
        },
        Cond::SameSide => match appliance::same_side_holds(&p.sides) {
            Ok(b) => yes(b),
            Err(what) => Tri::Unknown(what),
        },
        Cond::Unknown(what) => Tri::Unknown(what.clone()),
    }
}

/// Whether a rule's conditions hold: No as soon as one known condition fails (whatever the
/// unknown ones say), Unknown when the rest hold but one cannot be evaluated.
fn rule_matches(rule: &Rule, p: &Packet) -> Tri {
    let mut unknown = None;
    for m in &rule.matches {
        match test(&m.cond, p) {
            Tri::Yes if m.negate => return Tri::No,
            Tri::No if !m.negate => return Tri::No,
            Tri::Yes | Tri::No => {}
            Tri::Unknown(what) => {
                unknown.get_or_insert(what);
            }
        }
    }
    match unknown {
        Some(w) => Tri::Unknown(w),
        None => Tri::Yes,
    }
}

/// The longest rule text a decision carries: a rule's origin is the export's text, which a
/// hostile export makes hundreds of kilobytes long, and decisions are made for every piece.
const ORIGIN_MAX: usize = 1000;

/// A rule's origin as a decision names it: whole, or its first [`ORIGIN_MAX`] bytes (at a
/// character boundary) and `…`.
fn origin_text(origin: &str) -> String {
    if origin.len() <= ORIGIN_MAX {
        return origin.to_string();
    }
    let mut end = ORIGIN_MAX;
    while !origin.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &origin[..end])
}

/// The most rules one packet's walk visits: jumps may make the walk exponential (40 chains each
/// jumping to the next twice), and a chain walked once is remembered, but a bound on the total
/// work is what keeps a hostile export from hanging the audit.
const MAX_VISITS: usize = 100_000;

/// One packet's walk: the rules visited so far, and each chain's result once known (the result
/// of walking a chain depends only on the chain and the packet, unless the depth bound cut it).
struct WalkState {
    visits: usize,
    memo: Vec<Option<Walk>>,
    /// Set when the depth bound cut a walk: such a result is not remembered.
    cut: bool,
}

/// Whether a rule's source or family test excludes a source piece (one whose address conditions
/// answer the same for all of it).
fn excluded(r: &Rule, src: &Span) -> bool {
    let probe = num_addr(src.family, src.lo);
    r.matches.iter().any(|m| match &m.cond {
        Cond::Family(f) => (*f == src.family) == m.negate,
        Cond::Saddr(spans) => spans.contains(&probe) == m.negate,
        Cond::Concat(c) if !m.negate && c.fields[0] == Field::Saddr => {
            c.family.is_some_and(|f| f != src.family)
                || !c.elems.iter().any(|e| (e[0].0..=e[0].1).contains(&src.lo))
        }
        _ => false,
    })
}

/// The end of a chain walk: a verdict, or "fell off / returned" (go on in the caller).
#[derive(Clone)]
enum Walk {
    Final(Decision),
    Fallthrough,
}

impl Ruleset {
    /// The base chains a packet traverses, in order: ingress, prerouting, then its hook; by
    /// priority within each, ties in export order.
    fn base_chains(&self, p: &Packet) -> Vec<usize> {
        let fam = Family::of(&p.src);
        let mut list: Vec<(Hook, i32, usize)> = Vec::new();
        for (i, c) in self.chains.iter().enumerate() {
            let Some(b) = &c.base else { continue };
            if !b.families.contains(&fam) {
                continue;
            }
            for &h in &b.hooks {
                if matches!(h, Hook::Ingress | Hook::Prerouting) || h == p.hook {
                    list.push((h, b.priority, i));
                }
            }
        }
        list.sort();
        list.into_iter().map(|(_, _, i)| i).collect()
    }

    /// Does this new connection's first packet pass, and which rule decides.
    pub fn evaluate(&self, p: &Packet) -> Decision {
        self.evaluate_only::<Vec<u32>>(p, None)
    }

    /// As [`Ruleset::evaluate`], walking only the rules listed per chain (see
    /// [`Ruleset::relevant`]): the answer is the same when the rules left out cannot match.
    pub fn evaluate_only<L: AsRef<[u32]>>(&self, p: &Packet, only: Option<&[L]>) -> Decision {
        self.evaluate_counted(p, only).0
    }

    /// As [`Ruleset::evaluate_only`], with the number of rules the walk visited.
    fn evaluate_counted<L: AsRef<[u32]>>(
        &self,
        p: &Packet,
        only: Option<&[L]>,
    ) -> (Decision, usize) {
        let mut state = WalkState {
            visits: 0,
            memo: vec![None; self.chains.len()],
            cut: false,
        };
        let d = self.decide(p, only, &mut state);
        (d, state.visits)
    }

    fn decide<L: AsRef<[u32]>>(
        &self,
        p: &Packet,
        only: Option<&[L]>,
        state: &mut WalkState,
    ) -> Decision {
        let fam = Family::of(&p.src);
        if Family::of(&p.dst) != fam {
            return Decision {
                outcome: Outcome::Drop,
                rule: "source and destination of different address families".into(),
                at: None,
            };
        }
        if !self.families.contains(&fam) {
            return Decision {
                outcome: Outcome::Undecided(format!(
                    "{} traffic: the {} export has no rules for this address family",
                    if fam == Family::V4 { "IPv4" } else { "IPv6" },
                    self.format.as_str()
                )),
                rule: String::new(),
                at: None,
            };
        }
        let mut last = Decision {
            outcome: Outcome::Accept,
            rule: "no base chain on this hook (nothing filters)".into(),
            at: None,
        };
        // With several base chains, the accept worth naming is the first made by a rule (the
        // others typically accept by policy).
        let mut by_rule: Option<Decision> = None;
        for i in self.base_chains(p) {
            let chain = &self.chains[i];
            let d = match self.walk(i, p, 0, only, state) {
                Walk::Final(d) => {
                    if d.outcome == Outcome::Accept && by_rule.is_none() {
                        by_rule = Some(d.clone());
                    }
                    d
                }
                Walk::Fallthrough => {
                    let accept = chain.base.as_ref().is_some_and(|b| b.policy_accept);
                    Decision {
                        outcome: if accept {
                            Outcome::Accept
                        } else {
                            Outcome::Drop
                        },
                        rule: format!(
                            "{}: policy {}",
                            chain.name,
                            if accept { "accept" } else { "drop" }
                        ),
                        at: Some((i, None)),
                    }
                }
            };
            if d.outcome != Outcome::Accept {
                return d;
            }
            last = d;
        }
        by_rule.unwrap_or(last)
    }

    fn walk<L: AsRef<[u32]>>(
        &self,
        chain: usize,
        p: &Packet,
        depth: usize,
        only: Option<&[L]>,
        state: &mut WalkState,
    ) -> Walk {
        if depth > MAX_DEPTH {
            state.cut = true;
            return Walk::Final(Decision {
                outcome: Outcome::Undecided("jumps nested deeper than 64 (a loop?)".into()),
                rule: self.chains[chain].name.clone(),
                at: Some((chain, None)),
            });
        }
        if let Some(w) = &state.memo[chain] {
            return w.clone();
        }
        let outer_cut = std::mem::take(&mut state.cut);
        let w = self.walk_rules(chain, p, depth, only, state);
        if !state.cut {
            state.memo[chain] = Some(w.clone());
        }
        state.cut |= outer_cut;
        w
    }

    fn walk_rules<L: AsRef<[u32]>>(
        &self,
        chain: usize,
        p: &Packet,
        depth: usize,
        only: Option<&[L]>,
        state: &mut WalkState,
    ) -> Walk {
        let rules = &self.chains[chain].rules;
        let list: Box<dyn Iterator<Item = usize>> = match only {
            Some(o) => Box::new(o[chain].as_ref().iter().map(|&i| i as usize)),
            None => Box::new(0..rules.len()),
        };
        for index in list {
            let rule = &rules[index];
            let at = Some((chain, Some(index)));
            state.visits += 1;
            if state.visits > MAX_VISITS {
                return Walk::Final(Decision {
                    outcome: Outcome::Undecided(format!(
                        "the walk visits more than {MAX_VISITS} rules for one packet (jumps \
                         that multiply the work?)"
                    )),
                    rule: origin_text(&rule.origin),
                    at,
                });
            }
            match rule_matches(rule, p) {
                Tri::No => continue,
                Tri::Unknown(what) => {
                    if matches!(rule.action, Action::Continue) {
                        continue; // whatever it matches, it decides nothing
                    }
                    return Walk::Final(Decision {
                        outcome: Outcome::Undecided(what),
                        rule: origin_text(&rule.origin),
                        at,
                    });
                }
                Tri::Yes => {}
            }
            let mut action = &rule.action;
            if let Action::DportMap(entries) = action {
                match entries.iter().find(|(r, _)| ports_contain(&[*r], p.dport)) {
                    Some((_, a)) => action = a,
                    None => continue,
                }
            }
            let decided = |outcome| {
                // A set lookup names the element that holds: which of a thousand decides.
                let mut text = origin_text(&rule.origin);
                for m in rule.matches.iter().filter(|m| !m.negate) {
                    if let Cond::Concat(c) = &m.cond {
                        if let Some(e) = c.holding(p) {
                            text.push_str(&format!(" [element {e}]"));
                        }
                    }
                }
                Walk::Final(Decision {
                    outcome,
                    rule: text,
                    at,
                })
            };
            match action {
                Action::Accept => return decided(Outcome::Accept),
                Action::Drop | Action::Reject => return decided(Outcome::Drop),
                Action::Continue => {}
                Action::Return => return Walk::Fallthrough,
                Action::Jump(target) => {
                    if let Walk::Final(d) = self.walk(*target, p, depth + 1, only, state) {
                        return Walk::Final(d);
                    }
                }
                Action::Goto(target) => return self.walk(*target, p, depth + 1, only, state),
                Action::Unknown(what) => return decided(Outcome::Undecided(what.clone())),
                Action::DportMap(_) => {
                    return decided(Outcome::Undecided("nested verdict map".into()));
                }
            }
        }
        Walk::Fallthrough
    }

    /// Every port boundary the rules mention: a port range is cut at each `lo` and `hi + 1`, so
    /// that within a piece every port condition answers the same.
    pub fn port_cuts(&self, out: &mut Vec<u32>) {
        fn add(out: &mut Vec<u32>, list: &[(u16, u16)]) {
            for (lo, hi) in list {
                out.push(u32::from(*lo));
                out.push(u32::from(*hi) + 1);
            }
        }
        let mut seen = std::collections::HashSet::new();
        for r in self.chains.iter().flat_map(|c| &c.rules) {
            for m in &r.matches {
                match &m.cond {
                    // A set shared by many rules cuts once.
                    Cond::Dport(l) if seen.insert(l.id()) => add(out, l),
                    Cond::Concat(c) => {
                        if let Some(d) = c.fields.iter().position(|f| *f == Field::Dport) {
                            for e in &c.elems {
                                out.push(e[d].0 as u32);
                                out.push(e[d].1 as u32 + 1);
                            }
                        }
                    }
                    _ => {}
                }
            }
            if let Action::DportMap(entries) = &r.action {
                let l: Vec<(u16, u16)> = entries.iter().map(|(r, _)| *r).collect();
                add(out, &l);
            }
        }
    }

    /// Per chain, the rules that can match packets from a source piece (one whose address
    /// conditions answer the same for all of it): those whose source or family test excludes it
    /// are left out.
    pub fn relevant(&self, src: &Span) -> Vec<Vec<u32>> {
        self.chains
            .iter()
            .map(|c| {
                (0..c.rules.len() as u32)
                    .filter(|&i| !excluded(&c.rules[i as usize], src))
                    .collect()
            })
            .collect()
    }

    /// [`Ruleset::relevant`] for every row of source pieces at once: `pieces` sorted, cut at
    /// every source boundary, with their signatures ([`Ruleset::source_signatures`]); the
    /// answer per signature. A rule that tests its source against a set is a candidate only
    /// where a sweep over the pieces finds that set active, so 10,000 rules for 10,000
    /// different sources cost about 10,000 candidates in all, not 10,000 per row.
    pub fn relevant_rows(
        &self,
        family: Family,
        pieces: &[Span],
        sigs: &[u128],
    ) -> std::collections::HashMap<u128, Vec<Vec<u32>>> {
        // Rules gated by a source set (per distinct set), and the others.
        let mut set_of: std::collections::HashMap<usize, usize> = Default::default();
        let mut gated: Vec<(Addrs, Vec<(u32, u32)>)> = Vec::new();
        let mut always: Vec<(u32, u32)> = Vec::new();
        for (c, chain) in self.chains.iter().enumerate() {
            for (i, r) in chain.rules.iter().enumerate() {
                let gate = r.matches.iter().find_map(|m| match &m.cond {
                    Cond::Saddr(a) if !m.negate => Some(a),
                    _ => None,
                });
                let at = (c as u32, i as u32);
                match gate {
                    Some(a) => {
                        let k = *set_of.entry(a.id()).or_insert_with(|| {
                            gated.push((a.clone(), Vec::new()));
                            gated.len() - 1
                        });
                        gated[k].1.push(at);
                    }
                    None => always.push(at),
                }
            }
        }
        let mut events: Vec<(u128, bool, usize)> = Vec::new();
        for (k, (a, _)) in gated.iter().enumerate() {
            for s in a.merged().iter().filter(|s| s.family == family) {
                events.push((s.lo, true, k));
                if s.hi < family.max() {
                    events.push((s.hi + 1, false, k));
                }
            }
        }
        events.sort_unstable();
        let mut active: std::collections::BTreeSet<usize> = Default::default();
        let mut next = 0;
        let mut out: std::collections::HashMap<u128, Vec<Vec<u32>>> = Default::default();
        for (p, sig) in pieces.iter().zip(sigs) {
            while next < events.len() && events[next].0 <= p.lo {
                let (_, start, k) = events[next];
                if start {
                    active.insert(k);
                } else {
                    active.remove(&k);
                }
                next += 1;
            }
            if out.contains_key(sig) {
                continue;
            }
            let mut lists: Vec<Vec<u32>> = vec![Vec::new(); self.chains.len()];
            let candidates = always
                .iter()
                .chain(active.iter().flat_map(|&k| gated[k].1.iter()));
            for &(c, i) in candidates {
                if !excluded(&self.chains[c as usize].rules[i as usize], p) {
                    lists[c as usize].push(i);
                }
            }
            for l in &mut lists {
                l.sort_unstable();
            }
            out.insert(*sig, lists);
        }
        out
    }

    /// The port boundaries of the rules that can match a source piece (one whose address
    /// conditions answer the same for all of it): a rule whose source or family test excludes
    /// the piece cuts nothing there.
    /// A concatenated set cuts only at the ports of its boxes that hold for the source piece and
    /// the destination `dst`.
    pub fn port_cuts_for(&self, only: &[Vec<u32>], src: &Span, dst: &IpAddr, out: &mut Vec<u32>) {
        fn add(out: &mut Vec<u32>, list: &[(u16, u16)]) {
            for (lo, hi) in list {
                out.push(u32::from(*lo));
                out.push(u32::from(*hi) + 1);
            }
        }
        let rules = only
            .iter()
            .enumerate()
            .flat_map(|(c, list)| list.iter().map(move |&i| &self.chains[c].rules[i as usize]));
        let (s, d) = (src.lo, addr_num(dst));
        let mut seen = std::collections::HashSet::new();
        for r in rules {
            for m in &r.matches {
                match &m.cond {
                    Cond::Dport(l) if seen.insert(l.id()) => add(out, l),
                    Cond::Concat(c) => c.dports_for(s, d, out),
                    _ => {}
                }
            }
            if let Action::DportMap(entries) = &r.action {
                let l: Vec<(u16, u16)> = entries.iter().map(|(r, _)| *r).collect();
                add(out, &l);
            }
        }
    }

    /// The rules of `only` (per chain, as [`Ruleset::relevant`] gives them) that test the
    /// destination port (not negated): (chain, rule, ports). A piece of ports outside a rule's
    /// ports cannot match it, whatever its other conditions.
    pub fn dport_gates(&self, only: &[Vec<u32>]) -> Vec<(u32, u32, Ports)> {
        let mut out = Vec::new();
        for (c, list) in only.iter().enumerate() {
            for &i in list {
                let rule = &self.chains[c].rules[i as usize];
                let gate = rule.matches.iter().find_map(|m| match &m.cond {
                    Cond::Dport(p) if !m.negate => Some(p.clone()),
                    _ => None,
                });
                if let Some(p) = gate {
                    out.push((c as u32, i, p));
                }
            }
        }
        out
    }

    /// Whether any rule tests the port's parity (then each piece is evaluated for an even and an
    /// odd port).
    pub fn has_parity(&self) -> bool {
        self.chains
            .iter()
            .flat_map(|c| &c.rules)
            .flat_map(|r| &r.matches)
            .any(|m| matches!(m.cond, Cond::DportParity(_)))
    }

    /// For each source piece of `family` (sorted, cut at every source boundary of
    /// [`Ruleset::addr_cuts`]), a signature of the source conditions that hold for it: every
    /// source set, and every source interval of a concatenated set's element, that contains
    /// the piece. Pieces with one signature are treated alike by every rule (the grid evaluates
    /// one of them): a 20,000-address blocklist makes 40,000 pieces and two signatures.
    ///
    /// A signature is the XOR of a 128-bit number per condition (Zobrist hashing), kept while
    /// sweeping the pieces in order; two different sets of conditions share one with a
    /// probability of about 2^-128 per pair.
    pub fn source_signatures(&self, family: Family, pieces: &[Span]) -> Vec<u128> {
        let mut next: u64 = 0;
        let mut number = || {
            // splitmix64, twice: a fixed sequence, so a run is reproducible.
            let mut one = || {
                next = next.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut z = next;
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                z ^ (z >> 31)
            };
            (u128::from(one()) << 64) | u128::from(one())
        };
        let mut events: Vec<(u128, u128)> = Vec::new();
        let interval = |events: &mut Vec<(u128, u128)>, lo: u128, hi: u128, id: u128| {
            events.push((lo, id));
            if hi < family.max() {
                events.push((hi + 1, id));
            }
        };
        let mut seen = std::collections::HashSet::new();
        for r in self.chains.iter().flat_map(|c| &c.rules) {
            for m in &r.matches {
                match &m.cond {
                    Cond::Saddr(a) if seen.insert(a.id()) => {
                        let id = number();
                        for s in a.merged().iter().filter(|s| s.family == family) {
                            interval(&mut events, s.lo, s.hi, id);
                        }
                    }
                    Cond::Concat(c) if c.family == Some(family) => {
                        for (i, _) in c
                            .fields
                            .iter()
                            .enumerate()
                            .filter(|(_, f)| **f == Field::Saddr)
                        {
                            for e in &c.elems {
                                interval(&mut events, e[i].0, e[i].1, number());
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        events.sort_unstable();
        let mut sig = 0u128;
        let mut j = 0;
        pieces
            .iter()
            .map(|p| {
                while j < events.len() && events[j].0 <= p.lo {
                    sig ^= events[j].1;
                    j += 1;
                }
                sig
            })
            .collect()
    }

    /// Every address boundary of `family` the rules mention, for sources or destinations.
    pub fn addr_cuts(&self, family: Family, source: bool, out: &mut Vec<u128>) {
        let mut seen = std::collections::HashSet::new();
        for r in self.chains.iter().flat_map(|c| &c.rules) {
            for m in &r.matches {
                if let Cond::Concat(c) = &m.cond {
                    if c.family != Some(family) {
                        continue;
                    }
                    let want = if source { Field::Saddr } else { Field::Daddr };
                    for (i, _) in c.fields.iter().enumerate().filter(|(_, f)| **f == want) {
                        for e in &c.elems {
                            out.push(e[i].0);
                            if e[i].1 < family.max() {
                                out.push(e[i].1 + 1);
                            }
                        }
                    }
                    continue;
                }
                let spans = match (&m.cond, source) {
                    // A set shared by many rules cuts once.
                    (Cond::Saddr(s), true) | (Cond::Daddr(s), false) if seen.insert(s.id()) => s,
                    _ => continue,
                };
                for s in spans.iter().filter(|s| s.family == family) {
                    out.push(s.lo);
                    if s.hi < family.max() {
                        out.push(s.hi + 1);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
