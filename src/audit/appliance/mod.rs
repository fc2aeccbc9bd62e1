//! What the appliance readers (Cisco ASA, PAN-OS, FortiOS, Junos SRX) share: the names of where
//! a packet enters and leaves the appliance, the constructors of their rules in the audit's one
//! model, address and service values, object-group resolution bounded against cycles, and
//! located errors.

pub mod asa;
pub mod bind;
pub mod diff;
pub mod fortios;
pub mod junos;
pub mod panos;

use std::collections::BTreeMap;

use super::{
    Action, AuditError, Base, Chain, Cond, Family, Format, Hook, Match, Rule, Ruleset, Span,
};

/// Whether a format is an appliance's configuration (its rules name the appliance's zones or
/// interfaces, which `[firewalls.NAME]` maps to the deployment's zones).
pub fn is_appliance(format: Format) -> bool {
    matches!(
        format,
        Format::CiscoAsa
            | Format::PanosXml
            | Format::PanosSet
            | Format::FortiOs
            | Format::Junos
            | Format::JunosSet
    )
}

/// Deepest nesting of groups followed (object-groups in object-groups, address sets in address
/// sets); deeper is an error, and so is a group that contains itself.
pub const MAX_NESTING: usize = 16;

/// Longest appliance name (zone, `nameif`, interface) a packet can carry: PAN-OS allows 31
/// characters, Junos 63, ASA 48.
pub const SIDE_MAX: usize = 63;

/// An appliance's name for where a packet enters or leaves it (a security zone, a `nameif`, an
/// interface), held inline so that a [`super::Packet`] stays `Copy`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SideName {
    len: u8,
    bytes: [u8; SIDE_MAX],
}

impl SideName {
    /// None for a name longer than [`SIDE_MAX`] bytes (no appliance accepts one).
    pub fn new(name: &str) -> Option<SideName> {
        let b = name.as_bytes();
        if b.len() > SIDE_MAX {
            return None;
        }
        let mut bytes = [0; SIDE_MAX];
        bytes[..b.len()].copy_from_slice(b);
        Some(SideName {
            len: b.len() as u8,
            bytes,
        })
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len as usize]).unwrap_or("")
    }
}

impl std::fmt::Debug for SideName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

/// Where a packet enters and leaves an appliance, by the appliance's own names; None: not known
/// (a host audit, or a zone the deployment does not map), and a rule that asks is "cannot
/// decide".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sides {
    pub input: Option<SideName>,
    pub output: Option<SideName>,
}

impl Sides {
    /// Both sides, by name (an empty name, or one too long for any appliance, is unknown).
    pub fn of(input: &str, output: &str) -> Sides {
        let name = |n: &str| SideName::new(n).filter(|_| !n.is_empty());
        Sides {
            input: name(input),
            output: name(output),
        }
    }
}

/// The condition "the packet enters (or leaves) by one of these names".
pub fn side(output: bool, names: Vec<String>) -> Cond {
    Cond::Side { output, names }
}

/// The condition "the packet leaves by the zone it entered" (PAN-OS's intrazone rule).
pub fn same_side() -> Cond {
    Cond::SameSide
}

/// Sources in these intervals.
pub fn saddr(spans: Vec<Span>) -> Cond {
    Cond::saddr(spans)
}

/// Destinations in these intervals.
pub fn daddr(spans: Vec<Span>) -> Cond {
    Cond::daddr(spans)
}

/// The evaluation of a [`Cond::Side`]: whether the packet's side is among the names, or "cannot
/// decide" when the side is not known.
pub(super) fn side_holds(output: bool, names: &[String], sides: &Sides) -> Result<bool, String> {
    let side = if output { sides.output } else { sides.input };
    match side {
        Some(s) => Ok(names.iter().any(|n| n == s.as_str())),
        None => Err(format!(
            "{} {} (where the flow {} the appliance is not known: map the zone in \
             [firewalls.NAME.names])",
            if output { "to" } else { "from" },
            super::clip(&names.join(",")),
            if output { "leaves" } else { "enters" },
        )),
    }
}

/// The evaluation of [`Cond::SameSide`].
pub(super) fn same_side_holds(sides: &Sides) -> Result<bool, String> {
    match (sides.input, sides.output) {
        (Some(a), Some(b)) => Ok(a == b),
        _ => Err(
            "intrazone or interzone (where the flow enters or leaves the appliance is not \
                  known: map the zone in [firewalls.NAME.names])"
                .into(),
        ),
    }
}

/// A set of addresses: intervals of both families; `any` is both families whole.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Addrs {
    pub spans: Vec<Span>,
    /// Something the audit cannot resolve (a dynamic group, an FQDN object), named.
    pub unknown: Option<String>,
}

impl Addrs {
    pub fn any() -> Addrs {
        Addrs {
            spans: vec![whole(Family::V4), whole(Family::V6)],
            unknown: None,
        }
    }

    pub fn is_any(&self) -> bool {
        self.unknown.is_none()
            && [Family::V4, Family::V6]
                .iter()
                .all(|f| self.spans.contains(&whole(*f)))
    }

    pub fn add(&mut self, other: &Addrs) {
        self.spans.extend_from_slice(&other.spans);
        if self.unknown.is_none() {
            self.unknown.clone_from(&other.unknown);
        }
    }
}

pub fn whole(family: Family) -> Span {
    Span {
        family,
        lo: 0,
        hi: family.max(),
    }
}

/// One service: a protocol (None: any) and port intervals (None: any port).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Svc {
    pub proto: Option<Vec<u8>>,
    pub sport: Option<Vec<(u16, u16)>>,
    pub dport: Option<Vec<(u16, u16)>>,
    /// A service the audit cannot evaluate (App-ID, `application-default`), named.
    pub unknown: Option<String>,
}

impl Svc {
    pub fn any() -> Svc {
        Svc {
            proto: None,
            sport: None,
            dport: None,
            unknown: None,
        }
    }

    pub fn proto(p: u8, dport: Option<Vec<(u16, u16)>>) -> Svc {
        Svc {
            proto: Some(vec![p]),
            dport,
            ..Svc::any()
        }
    }

    pub fn unknown(what: String) -> Svc {
        Svc {
            unknown: Some(what),
            ..Svc::any()
        }
    }
}

/// A policy or ACL entry read from an appliance, before it becomes rules.
pub struct Entry {
    pub from: Option<Vec<String>>,
    pub to: Option<Vec<String>>,
    pub src: Addrs,
    pub dst: Addrs,
    pub negate_src: bool,
    pub negate_dst: bool,
    pub services: Vec<Svc>,
    pub action: Action,
    pub origin: String,
    /// A condition the audit cannot evaluate for this entry (App-ID, a schedule…).
    pub unknown: Option<String>,
}

impl Entry {
    /// The entry as rules of the model: one per service (a service group mixes protocols and
    /// ports, which one rule's conditions cannot), all with the entry's origin.
    pub fn rules(self) -> Vec<Rule> {
        let mut base = Vec::new();
        if let Some(f) = self.from {
            base.push(Match::is(side(false, f)));
        }
        if let Some(t) = self.to {
            base.push(Match::is(side(true, t)));
        }
        for (addrs, negate, source) in [
            (&self.src, self.negate_src, true),
            (&self.dst, self.negate_dst, false),
        ] {
            if let Some(u) = &addrs.unknown {
                base.push(Match::is(Cond::Unknown(u.clone())));
            }
            if negate || !addrs.is_any() {
                let spans = addrs.spans.clone();
                base.push(Match::not(
                    if source { saddr(spans) } else { daddr(spans) },
                    negate,
                ));
            }
        }
        if let Some(u) = self.unknown {
            base.push(Match::is(Cond::Unknown(u)));
        }
        self.services
            .into_iter()
            .map(|s| {
                let mut matches = base.clone();
                if let Some(u) = s.unknown {
                    matches.push(Match::is(Cond::Unknown(u)));
                }
                if let Some(p) = s.proto {
                    matches.push(Match::is(Cond::Proto(p)));
                }
                if let Some(p) = s.sport {
                    matches.push(Match::is(Cond::sport(p)));
                }
                if let Some(p) = s.dport {
                    matches.push(Match::is(Cond::dport(p)));
                }
                Rule {
                    matches,
                    action: self.action.clone(),
                    origin: self.origin.clone(),
                    spec: String::new(),
                }
            })
            .collect()
    }
}

/// A rule that decides every packet it sees (an implicit deny, a default rule), with conditions.
pub fn final_rule(matches: Vec<Match>, action: Action, origin: String) -> Rule {
    Rule {
        matches,
        action,
        origin,
        spec: String::new(),
    }
}

/// A chain on the forward path that drops what no rule accepts (every appliance's implicit
/// deny), named for the report.
pub fn chain(name: &str, priority: i32, rules: Vec<Rule>, policy_accept: bool) -> Chain {
    Chain {
        name: name.to_string(),
        base: Some(Base {
            hooks: vec![Hook::Forward],
            priority,
            families: vec![Family::V4, Family::V6],
            policy_accept,
        }),
        rules,
    }
}

pub fn ruleset(format: Format, chains: Vec<Chain>) -> Ruleset {
    Ruleset {
        format,
        chains,
        families: vec![Family::V4, Family::V6],
    }
}

/// A located error of an appliance reader.
pub fn err(file: &str, line: usize, col: usize, what: String, hint: &str) -> AuditError {
    AuditError::Syntax {
        file: file.to_string(),
        line,
        col,
        what,
        hint: hint.to_string(),
    }
}

/// Most values one group may expand to (a hostile config nests wide groups in wide groups).
pub const MAX_MEMBERS: usize = 1_000_000;

/// Named groups whose members are values or other groups, resolved with cycles, deep nesting
/// and runaway expansion refused; each group is resolved once.
pub struct Groups<V> {
    /// name → (line, members: Ok(value) or Err(group name))
    pub defs: BTreeMap<String, (usize, Vec<Result<V, String>>)>,
    done: std::cell::RefCell<BTreeMap<String, std::rc::Rc<Vec<V>>>>,
}

impl<V: Clone> Default for Groups<V> {
    fn default() -> Self {
        Groups {
            defs: BTreeMap::new(),
            done: Default::default(),
        }
    }
}

impl<V: Clone> Groups<V> {
    /// The members of group `name`, defined at `line` unless it already was.
    pub fn members(&mut self, name: &str, line: usize) -> &mut Vec<Result<V, String>> {
        &mut self
            .defs
            .entry(name.to_string())
            .or_insert((line, Vec::new()))
            .1
    }

    /// Every value of the group, nested groups flattened.
    pub fn resolve(
        &self,
        name: &str,
        stack: &mut Vec<String>,
        file: &str,
        hint: &str,
    ) -> Result<Vec<V>, AuditError> {
        Ok(self.resolved(name, stack, file, hint)?.to_vec())
    }

    /// As [`Groups::resolve`], shared; `stack` holds the groups being resolved (a group met
    /// again is a cycle).
    fn resolved(
        &self,
        name: &str,
        stack: &mut Vec<String>,
        file: &str,
        hint: &str,
    ) -> Result<std::rc::Rc<Vec<V>>, AuditError> {
        if let Some(v) = self.done.borrow().get(name) {
            return Ok(v.clone());
        }
        let Some((line, members)) = self.defs.get(name) else {
            return Err(AuditError::Content {
                file: file.to_string(),
                what: format!("`{}` is used but never defined", super::clip(name)),
                hint: hint.to_string(),
            });
        };
        if stack.iter().any(|s| s == name) {
            return Err(err(
                file,
                *line,
                1,
                format!(
                    "group `{}` contains itself (through {})",
                    super::clip(name),
                    super::clip(&stack.join(" > "))
                ),
                hint,
            ));
        }
        if stack.len() >= MAX_NESTING {
            return Err(err(
                file,
                *line,
                1,
                format!("groups nested deeper than {MAX_NESTING}"),
                hint,
            ));
        }
        stack.push(name.to_string());
        let mut out = Vec::new();
        for m in members {
            match m {
                Ok(v) => out.push(v.clone()),
                Err(g) => out.extend(self.resolved(g, stack, file, hint)?.iter().cloned()),
            }
            if out.len() > MAX_MEMBERS {
                return Err(err(
                    file,
                    *line,
                    1,
                    format!(
                        "group `{}` expands to more than {MAX_MEMBERS} members",
                        super::clip(name)
                    ),
                    hint,
                ));
            }
        }
        stack.pop();
        let out = std::rc::Rc::new(out);
        self.done.borrow_mut().insert(name.to_string(), out.clone());
        Ok(out)
    }
}

/// A port name's number as the appliances spell them (Cisco's literal names; the others write
/// numbers).
pub fn port_name(name: &str) -> Option<u16> {
    if let Ok(n) = name.parse() {
        return Some(n);
    }
    Some(match name {
        "aol" => 5190,
        "bgp" => 179,
        "biff" => 512,
        "bootpc" => 68,
        "bootps" => 67,
        "chargen" => 19,
        "cifs" => 3020,
        "citrix-ica" => 1494,
        "cmd" => 514,
        "ctiqbe" => 2748,
        "daytime" => 13,
        "discard" => 9,
        "dnsix" => 195,
        "domain" => 53,
        "echo" => 7,
        "exec" => 512,
        "finger" => 79,
        "ftp" => 21,
        "ftp-data" => 20,
        "gopher" => 70,
        "h323" => 1720,
        "hostname" => 101,
        "http" | "www" => 80,
        "https" => 443,
        "ident" => 113,
        "imap4" => 143,
        "irc" => 194,
        "isakmp" => 500,
        "kerberos" => 750,
        "klogin" => 543,
        "kshell" => 544,
        "ldap" => 389,
        "ldaps" => 636,
        "login" => 513,
        "lotusnotes" => 1352,
        "lpd" => 515,
        "mobile-ip" => 434,
        "nameserver" => 42,
        "netbios-dgm" => 138,
        "netbios-ns" => 137,
        "netbios-ssn" => 139,
        "nfs" => 2049,
        "nntp" => 119,
        "ntp" => 123,
        "pcanywhere-data" => 5631,
        "pcanywhere-status" => 5632,
        "pim-auto-rp" => 496,
        "pop2" => 109,
        "pop3" => 110,
        "pptp" => 1723,
        "radius" => 1645,
        "radius-acct" => 1646,
        "rip" => 520,
        "rsh" => 514,
        "rtsp" => 554,
        "secureid-udp" => 5510,
        "sip" => 5060,
        "smtp" => 25,
        "snmp" => 161,
        "snmptrap" => 162,
        "sqlnet" => 1521,
        "ssh" => 22,
        "sunrpc" => 111,
        "syslog" => 514,
        "tacacs" => 49,
        "talk" => 517,
        "telnet" => 23,
        "tftp" => 69,
        "time" => 37,
        "uucp" => 540,
        "vxlan" => 4789,
        "who" => 513,
        "whois" => 43,
        "xdmcp" => 177,
        _ => return None,
    })
}

/// A protocol by name or number (`ip`: any, None).
pub fn proto_name(name: &str) -> Option<Option<Vec<u8>>> {
    Some(match name {
        "ip" | "any" => None,
        "tcp" => Some(vec![6]),
        "udp" => Some(vec![17]),
        "tcp-udp" => Some(vec![6, 17]),
        "icmp" => Some(vec![1]),
        "icmp6" | "ipv6-icmp" => Some(vec![58]),
        "esp" => Some(vec![50]),
        "ah" => Some(vec![51]),
        "gre" => Some(vec![47]),
        "sctp" => Some(vec![132]),
        n => Some(vec![n.parse().ok()?]),
    })
}

/// `a-b` or `a` as a port interval (PAN-OS, FortiOS, Junos write ranges so).
pub fn port_span(s: &str) -> Option<(u16, u16)> {
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let (a, b) = (port_name(a.trim())?, port_name(b.trim())?);
    (a <= b).then_some((a, b))
}

/// An address, CIDR (`10.0.0.0/8`, `2001:db8::/32`) or `a-b` range as an interval.
pub fn span_of(text: &str) -> Option<Span> {
    if let Some((a, b)) = text.split_once('-') {
        let (a, b): (std::net::IpAddr, std::net::IpAddr) =
            (a.trim().parse().ok()?, b.trim().parse().ok()?);
        let f = Family::of(&a);
        let (lo, hi) = (super::addr_num(&a), super::addr_num(&b));
        return (f == Family::of(&b) && lo <= hi).then_some(Span { family: f, lo, hi });
    }
    if let Ok(a) = text.parse::<std::net::IpAddr>() {
        let n = super::addr_num(&a);
        return Some(Span {
            family: Family::of(&a),
            lo: n,
            hi: n,
        });
    }
    let net: ipnet::IpNet = text.parse().ok()?;
    Some(Span::net(&net.trunc()))
}

/// An IPv4 address and dotted mask (`10.0.0.0 255.255.0.0`) as an interval; None for a mask that
/// is not contiguous.
pub fn span_mask(addr: &str, mask: &str) -> Option<Span> {
    let a: std::net::Ipv4Addr = addr.parse().ok()?;
    let m: std::net::Ipv4Addr = mask.parse().ok()?;
    let m = u32::from(m);
    if m.leading_ones() + m.trailing_zeros() != 32 {
        return None;
    }
    let net = ipnet::Ipv4Net::new(a, m.leading_ones() as u8).ok()?;
    Some(Span::net(&ipnet::IpNet::V4(net.trunc())))
}

/// Compares the interval lists of two address sets, for tests.
#[cfg(test)]
pub fn spans_text(a: &Addrs) -> Vec<String> {
    a.spans.iter().map(super::span_text).collect()
}
