//! Live verification: the only module that touches sockets (wire format, listener, prober).
//!
//! [`proto`] is the pure token protocol, [`listen`] answers probes on every planned port of a
//! node, [`probe`] sends them and classifies each port. Nothing here prints: callers get reports
//! and callbacks.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::catalog::Transport;
use crate::range::PortRange;

pub mod listen;
pub mod probe;
pub mod proto;
mod sysinfo;
pub mod windows;

pub mod sweep;

/// One planned set of ports on one address, as the listener binds it and the prober tests it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub address: IpAddr,
    pub transport: Transport,
    pub ports: PortRange,
    pub component: String,
    pub port_id: String,
}

/// The environment variable a secret can come from.
pub const SECRET_ENV: &str = "SCC_PORTS_SECRET";

/// The shared key of listener and prober.
///
/// It is text (a passphrase, or the 64 hex digits [`Secret::generate`] makes), and its key
/// bytes are that text's bytes, so a printed secret reads back to the same key from a file or
/// from [`SECRET_ENV`]. `Debug` hides it; `Display` shows it (the CLI prints a generated one).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

/// Where a secret came from: the CLI prints only generated ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretOrigin {
    File,
    Env,
    Generated,
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read secret file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("secret file {} is {what}, not a regular file: give a file that holds the secret (one line)", path.display())]
    NotRegular { path: PathBuf, what: &'static str },
    #[error("secret file {} is longer than {MAX_SECRET_FILE} bytes: a secret is one line; is it the right file?", path.display())]
    TooLong { path: PathBuf },
    #[error("secret file {} is not UTF-8 text", path.display())]
    NotText { path: PathBuf },
    #[error("secret file {} is empty", path.display())]
    EmptyFile { path: PathBuf },
    #[error("{SECRET_ENV} is set but empty or not UTF-8")]
    BadEnv,
    #[error("the secret is empty")]
    Empty,
    #[error("the system random source failed: {0}")]
    Random(String),
}

impl Secret {
    /// A secret from text; surrounding whitespace (a file's trailing newline) is not part of it.
    pub fn new(text: &str) -> Result<Secret, SecretError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(SecretError::Empty);
        }
        Ok(Secret(text.to_owned()))
    }

    /// The secret in a file: a regular file (or a pipe, as `<(pass show scc)` gives), of at
    /// most [`MAX_SECRET_FILE`] bytes; never reads more than that (`/dev/zero` is refused).
    pub fn from_file(path: &Path) -> Result<Secret, SecretError> {
        use std::io::Read;
        let read_err = |source| SecretError::Read {
            path: path.to_owned(),
            source,
        };
        let file = std::fs::File::open(path).map_err(read_err)?;
        let meta = file.metadata().map_err(read_err)?;
        if let Some(what) = not_regular(&meta) {
            return Err(SecretError::NotRegular {
                path: path.to_owned(),
                what,
            });
        }
        let mut bytes = Vec::new();
        file.take(MAX_SECRET_FILE + 1)
            .read_to_end(&mut bytes)
            .map_err(read_err)?;
        if bytes.len() as u64 > MAX_SECRET_FILE {
            return Err(SecretError::TooLong {
                path: path.to_owned(),
            });
        }
        let text = String::from_utf8(bytes).map_err(|_| SecretError::NotText {
            path: path.to_owned(),
        })?;
        Secret::new(&text).map_err(|_| SecretError::EmptyFile {
            path: path.to_owned(),
        })
    }

    /// The secret of [`SECRET_ENV`], if that variable is set.
    pub fn from_env() -> Result<Option<Secret>, SecretError> {
        match std::env::var_os(SECRET_ENV) {
            None => Ok(None),
            Some(v) => {
                let text = v.into_string().map_err(|_| SecretError::BadEnv)?;
                Secret::new(&text)
                    .map(Some)
                    .map_err(|_| SecretError::BadEnv)
            }
        }
    }

    /// [`SECRET_ENV`] if set, else a fresh random secret (the listener's default).
    pub fn from_env_or_generate() -> Result<(Secret, SecretOrigin), SecretError> {
        match Secret::from_env()? {
            Some(s) => Ok((s, SecretOrigin::Env)),
            None => Ok((Secret::generate()?, SecretOrigin::Generated)),
        }
    }

    /// 32 random bytes, as 64 lowercase hex digits.
    pub fn generate() -> Result<Secret, SecretError> {
        let mut raw = [0u8; 32];
        getrandom::fill(&mut raw).map_err(|e| SecretError::Random(e.to_string()))?;
        Ok(Secret(hex(&raw)))
    }

    /// The text of the secret, to print or store.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The HMAC key.
    pub fn key(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<hidden>)")
    }
}

/// The longest secret file read.
pub const MAX_SECRET_FILE: u64 = 4096;

/// What a file that cannot hold a secret is ("a directory", "a character device"), or `None`
/// for a regular file or a pipe.
fn not_regular(meta: &std::fs::Metadata) -> Option<&'static str> {
    if meta.is_file() {
        return None;
    }
    if meta.is_dir() {
        return Some("a directory");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        if t.is_fifo() {
            return None;
        }
        if t.is_char_device() {
            return Some("a character device");
        }
        if t.is_block_device() {
            return Some("a block device");
        }
        if t.is_socket() {
            return Some("a socket");
        }
    }
    Some("not a regular file")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Raises the soft open-file limit to the hard one (a node's 1,602 UDP ports, or thousands of
/// probes in flight, need more than the common default of 1,024). Returns the soft limit now in
/// force, or `None` where it cannot be read.
pub fn raise_nofile_limit() -> Option<u64> {
    // Wanting 1 reads the limits and changes nothing; then the soft limit goes up to the hard.
    let now = sysinfo::raise_nofile_to(1)?;
    sysinfo::raise_nofile_to(now.hard).map(|l| l.soft)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_are_hex_and_differ() {
        let a = Secret::generate().unwrap();
        let b = Secret::generate().unwrap();
        assert_eq!(a.as_str().len(), 64);
        assert!(a.as_str().bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn secret_text_is_trimmed_and_never_empty() {
        assert_eq!(Secret::new("  abc\n").unwrap().key(), b"abc");
        assert!(Secret::new(" \n").is_err());
        assert_eq!(
            format!("{:?}", Secret::new("abc").unwrap()),
            "Secret(<hidden>)"
        );
    }

    #[test]
    fn secret_file_round_trips_a_printed_secret() {
        let s = Secret::generate().unwrap();
        let dir = std::env::temp_dir().join(format!("scc-secret-{}", std::process::id()));
        std::fs::write(&dir, format!("{s}\n")).unwrap();
        let read = Secret::from_file(&dir);
        let _ = std::fs::remove_file(&dir);
        assert_eq!(read.unwrap(), s);
    }

    #[cfg(unix)]
    #[test]
    fn secret_files_are_read_bounded_and_devices_refused() {
        let err = Secret::from_file(Path::new("/dev/zero")).unwrap_err();
        assert!(matches!(
            err,
            SecretError::NotRegular {
                what: "a character device",
                ..
            }
        ));
        assert!(
            err.to_string().contains("/dev/zero is a character device"),
            "{err}"
        );
        let err = Secret::from_file(Path::new("/")).unwrap_err();
        assert!(matches!(
            err,
            SecretError::NotRegular {
                what: "a directory",
                ..
            }
        ));
        let f = std::env::temp_dir().join(format!("scc-secret-long-{}", std::process::id()));
        std::fs::write(&f, "x".repeat(MAX_SECRET_FILE as usize + 1)).unwrap();
        let long = Secret::from_file(&f);
        std::fs::write(&f, "x".repeat(MAX_SECRET_FILE as usize)).unwrap();
        let max = Secret::from_file(&f);
        let _ = std::fs::remove_file(&f);
        assert!(matches!(long, Err(SecretError::TooLong { .. })));
        assert_eq!(max.unwrap().key().len(), MAX_SECRET_FILE as usize);
    }

    #[test]
    fn nofile_limit_is_readable() {
        assert!(raise_nofile_limit().unwrap_or(0) > 0);
    }
}
