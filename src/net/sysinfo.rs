//! Who holds a port: the owning process of a socket, read from Linux's /proc (best effort);
//! and the process's open-file limit, which bounds how many ports one listener can hold.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::catalog::Transport;

/// A process holding a socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub pid: u32,
    pub name: String,
}

/// One socket of /proc/net/{tcp,udp}{,6}.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SocketLine {
    address: IpAddr,
    port: u16,
    listening: bool,
    inode: u64,
}

fn parse_addr(hex: &str) -> Option<IpAddr> {
    match hex.len() {
        8 => {
            // The kernel prints the network-order bytes as one host-order u32.
            let v = u32::from_str_radix(hex, 16).ok()?;
            Some(IpAddr::V4(Ipv4Addr::from(v.to_ne_bytes())))
        }
        32 => {
            let mut bytes = [0u8; 16];
            for (i, chunk) in bytes.chunks_mut(4).enumerate() {
                let v = u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16).ok()?;
                chunk.copy_from_slice(&v.to_ne_bytes());
            }
            Some(IpAddr::V6(Ipv6Addr::from(bytes)))
        }
        _ => None,
    }
}

fn parse_table(text: &str) -> Vec<SocketLine> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (addr, port) = f.get(1)?.split_once(':')?;
            Some(SocketLine {
                address: parse_addr(addr)?,
                port: u16::from_str_radix(port, 16).ok()?,
                listening: *f.get(3)? == "0A",
                inode: f.get(9)?.parse().ok()?,
            })
        })
        .collect()
}

fn covers(bound: IpAddr, wanted: IpAddr) -> bool {
    bound == wanted || bound.is_unspecified() || wanted.is_unspecified()
}

/// For each `(address, transport, port)`, the processes holding that port on (or covering) the
/// address, where /proc tells. One pass over /proc serves every query.
pub fn holders(queries: &[(IpAddr, Transport, u16)]) -> Vec<Vec<Holder>> {
    if queries.is_empty() {
        return Vec::new();
    }
    let mut tables: HashMap<Transport, Vec<SocketLine>> = HashMap::new();
    for transport in [Transport::Tcp, Transport::Udp] {
        let base = transport.as_str();
        let mut lines = Vec::new();
        for v6 in ["", "6"] {
            // thread-self: this thread's network namespace, which may not be the process's.
            let text = std::fs::read_to_string(format!("/proc/thread-self/net/{base}{v6}"))
                .or_else(|_| std::fs::read_to_string(format!("/proc/net/{base}{v6}")));
            if let Ok(text) = text {
                lines.extend(parse_table(&text));
            }
        }
        tables.insert(transport, lines);
    }
    let wanted: Vec<HashSet<u64>> = queries
        .iter()
        .map(|&(address, transport, port)| {
            let matching: Vec<&SocketLine> = tables[&transport]
                .iter()
                .filter(|l| l.port == port && l.inode != 0 && covers(l.address, address))
                .collect();
            // A TCP bind with SO_REUSEADDR conflicts only with listeners, so prefer them.
            let listening = matching.iter().any(|l| l.listening);
            matching
                .iter()
                .filter(|l| transport != Transport::Tcp || !listening || l.listening)
                .map(|l| l.inode)
                .collect()
        })
        .collect();
    let all: HashSet<u64> = wanted.iter().flatten().copied().collect();
    let by_inode = owners(&all);
    wanted
        .iter()
        .map(|inodes| {
            let mut v: Vec<Holder> = inodes
                .iter()
                .filter_map(|i| by_inode.get(i))
                .flatten()
                .cloned()
                .collect();
            v.sort_by_key(|h| h.pid);
            v.dedup();
            v
        })
        .collect()
}

/// Scans /proc/*/fd once for the sockets `inodes`.
fn owners(inodes: &HashSet<u64>) -> HashMap<u64, Vec<Holder>> {
    let mut found: HashMap<u64, Vec<Holder>> = HashMap::new();
    if inodes.is_empty() {
        return found;
    }
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in procs.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        let mut name: Option<String> = None;
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            let Some(inode) = target
                .to_str()
                .and_then(|t| t.strip_prefix("socket:["))
                .and_then(|t| t.strip_suffix(']'))
                .and_then(|t| t.parse::<u64>().ok())
            else {
                continue;
            };
            if inodes.contains(&inode) {
                let name = name
                    .get_or_insert_with(|| {
                        std::fs::read_to_string(entry.path().join("comm"))
                            .map(|s| s.trim().to_owned())
                            .unwrap_or_default()
                    })
                    .clone();
                found.entry(inode).or_default().push(Holder { pid, name });
            }
        }
    }
    found
}

/// The open-file limits in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NofileLimit {
    pub soft: u64,
    pub hard: u64,
}

/// Descriptors a process needs besides its sockets (std streams, the runtime, /proc reads).
pub const NOFILE_RESERVE: u64 = 64;

/// Raises the soft open-file limit to `wanted` within the hard limit, and the hard limit too
/// where the process may (root, up to the kernel's fs.nr_open). Returns the limits now in
/// force, or `None` where they cannot be read.
pub fn raise_nofile_to(wanted: u64) -> Option<NofileLimit> {
    #[cfg(unix)]
    {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit/setrlimit only read or write the struct we pass.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
                return None;
            }
        }
        #[allow(clippy::useless_conversion)] // rlim_t is not u64 on every unix
        let now = |l: &libc::rlimit| NofileLimit {
            soft: u64::try_from(l.rlim_cur).unwrap_or(u64::MAX),
            hard: u64::try_from(l.rlim_max).unwrap_or(u64::MAX),
        };
        let have = now(&lim);
        if have.soft >= wanted {
            return Some(have);
        }
        let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok())
            .unwrap_or(have.hard);
        // Above the hard limit only with privilege; the kernel refuses past fs.nr_open.
        for (soft, hard) in [
            (wanted.min(nr_open), wanted.min(nr_open).max(have.hard)),
            (wanted.min(have.hard), have.hard),
        ] {
            #[allow(clippy::useless_conversion)] // rlim_t is not u64 on every unix
            let (cur, max): (libc::rlim_t, libc::rlim_t) = (
                soft.try_into().unwrap_or(libc::RLIM_INFINITY),
                hard.try_into().unwrap_or(libc::RLIM_INFINITY),
            );
            let want = libc::rlimit {
                rlim_cur: cur,
                rlim_max: max,
            };
            // SAFETY: as above.
            if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &want) } == 0 {
                return Some(now(&want));
            }
        }
        Some(have)
    }
    #[cfg(not(unix))]
    {
        let _ = wanted;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_net_lines() {
        let text = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0\n";
        let l = parse_table(text);
        assert_eq!(
            l,
            vec![SocketLine {
                address: "127.0.0.1".parse().unwrap(),
                port: 8080,
                listening: true,
                inode: 4242
            }]
        );
        let v6 = "h\n 0: 00000000000000000000000001000000:0050 00000000000000000000000000000000:0000 0A 0 0 0 0 0 77\n";
        let l = parse_table(v6);
        assert_eq!(l[0].address, "::1".parse::<IpAddr>().unwrap());
        assert_eq!(l[0].port, 80);
        assert_eq!(l[0].inode, 77);
        assert!(parse_table("h\ngarbage line\n").is_empty());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn finds_our_own_listener() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let h = holders(&[("127.0.0.1".parse().unwrap(), Transport::Tcp, port)]);
        assert!(h[0].iter().any(|h| h.pid == std::process::id()), "{h:?}");
    }

    #[test]
    fn raising_to_what_is_in_force_keeps_it() {
        let now = raise_nofile_to(1).expect("readable limits");
        assert!(now.soft >= 1 && now.hard >= now.soft);
    }
}
