//! A throw-away self-signed TLS certificate for `127.0.0.1` and `localhost`, made with the
//! `openssl` command-line tool (no certificate crate in the tree), and [`TempDir`], the
//! directory it lives in.
//!
//! [`TestCert::generate`] writes an ECDSA P-256 key and certificate into a fresh temporary
//! directory and returns the PEM paths (for a daemon's `router.ca_file`), the DER bytes (for
//! a rustls server or a root store) and the SHA-256 of the DER certificate as `openssl x509
//! -fingerprint -sha256` prints it (for `router.cert_sha256` pinning). The directory is
//! removed on drop. Every `openssl` run is bounded by [`OPENSSL_TIMEOUT`].
//!
//! By default the certificate is an end-entity certificate (`CA:FALSE`, `serverAuth`, SAN
//! `IP:127.0.0.1, DNS:localhost`): webpki refuses a `CA:TRUE` certificate as a server
//! certificate, which is what `openssl req -x509` makes with the default config, so the
//! extensions come from our own config file. [`CertKind::CaLike`] makes the `CA:TRUE` kind on
//! purpose, as a RouterOS self-signed certificate usually is.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::netns::run_bounded;

/// Longest any `openssl` run may take.
pub const OPENSSL_TIMEOUT: Duration = Duration::from_secs(20);
/// The `openssl` binary.
pub const OPENSSL: &str = "/usr/bin/openssl";

static NEXT_DIR: AtomicU32 = AtomicU32::new(0);

/// A fresh directory under the system temp dir, removed (with its contents) on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `$TMPDIR/wanctl-<prefix>-<pid>-<n>` (emptied first if a previous run with the
    /// same pid left it behind).
    pub fn new(prefix: &str) -> io::Result<TempDir> {
        let n = NEXT_DIR.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("wanctl-{prefix}-{}-{n}", std::process::id()));
        if path.exists() {
            fs::remove_dir_all(&path)?;
        }
        fs::create_dir_all(&path)
            .map_err(|e| io::Error::new(e.kind(), format!("create {}: {e}", path.display())))?;
        Ok(TempDir { path })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `name` inside the directory.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// `openssl req` config: subject and SAN; `{CONSTRAINTS}` and `{USAGE}` are filled in per
/// [`CertKind`] (see the module doc for why not the default config).
const OPENSSL_CONFIG: &str = "\
[req]
distinguished_name = dn
x509_extensions = server_cert
prompt = no

[dn]
CN = localhost
O = wanctl test router

[server_cert]
basicConstraints = critical, {CONSTRAINTS}
{USAGE}
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
";

/// What kind of self-signed certificate to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertKind {
    /// `CA:FALSE`, `serverAuth`: verifies through a root store holding it, and by pin.
    Leaf,
    /// `CA:TRUE`, as RouterOS self-signed certificates (and `openssl req -x509` defaults)
    /// usually are: webpki refuses it as a server certificate (`CaUsedAsEndEntity`), so only
    /// pinning or "insecure" accepts it.
    CaLike,
}

/// A self-signed certificate and its key, on disk and in memory.
#[derive(Debug)]
pub struct TestCert {
    dir: TempDir,
    /// The certificate, PEM (`-----BEGIN CERTIFICATE-----`).
    pub cert_pem: PathBuf,
    /// The private key, PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), unencrypted.
    pub key_pem: PathBuf,
    /// The certificate, DER.
    pub cert_der: Vec<u8>,
    /// The private key, PKCS#8 DER.
    pub key_der: Vec<u8>,
    /// SHA-256 of `cert_der`, from `openssl x509 -fingerprint -sha256`.
    pub sha256: [u8; 32],
}

impl TestCert {
    /// Generates a new [`CertKind::Leaf`] key and certificate (valid for 7 days).
    pub fn generate() -> io::Result<TestCert> {
        TestCert::generate_kind(CertKind::Leaf)
    }

    /// Generates a new key and certificate of `kind` (valid from now for 7 days) with `openssl`.
    pub fn generate_kind(kind: CertKind) -> io::Result<TestCert> {
        let dir = TempDir::new("cert")?;
        let config = dir.join("openssl.cnf");
        let cert_pem = dir.join("cert.pem");
        let key_pem = dir.join("key.pem");
        let cert_der_path = dir.join("cert.der");
        let key_der_path = dir.join("key.der");
        let (constraints, usage) = match kind {
            CertKind::Leaf => {
                ("CA:FALSE", "keyUsage = critical, digitalSignature\nextendedKeyUsage = serverAuth")
            }
            CertKind::CaLike => ("CA:TRUE", "keyUsage = critical, digitalSignature, keyCertSign"),
        };
        fs::write(&config, OPENSSL_CONFIG.replace("{CONSTRAINTS}", constraints).replace("{USAGE}", usage))?;

        openssl(&[
            "req".as_ref(),
            "-x509".as_ref(),
            "-newkey".as_ref(),
            "ec".as_ref(),
            "-pkeyopt".as_ref(),
            "ec_paramgen_curve:prime256v1".as_ref(),
            "-nodes".as_ref(),
            "-days".as_ref(),
            "7".as_ref(),
            "-config".as_ref(),
            config.as_os_str(),
            "-keyout".as_ref(),
            key_pem.as_os_str(),
            "-out".as_ref(),
            cert_pem.as_os_str(),
        ])?;
        openssl(&[
            "x509".as_ref(),
            "-in".as_ref(),
            cert_pem.as_os_str(),
            "-outform".as_ref(),
            "DER".as_ref(),
            "-out".as_ref(),
            cert_der_path.as_os_str(),
        ])?;
        openssl(&[
            "pkcs8".as_ref(),
            "-topk8".as_ref(),
            "-nocrypt".as_ref(),
            "-in".as_ref(),
            key_pem.as_os_str(),
            "-outform".as_ref(),
            "DER".as_ref(),
            "-out".as_ref(),
            key_der_path.as_os_str(),
        ])?;
        let printed = openssl(&[
            "x509".as_ref(),
            "-in".as_ref(),
            cert_pem.as_os_str(),
            "-noout".as_ref(),
            "-fingerprint".as_ref(),
            "-sha256".as_ref(),
        ])?;
        let sha256 = parse_fingerprint(&printed).ok_or_else(|| {
            io::Error::other(format!("openssl printed no SHA-256 fingerprint: {printed:?}"))
        })?;
        let cert_der = fs::read(&cert_der_path)?;
        let key_der = fs::read(&key_der_path)?;
        Ok(TestCert { dir, cert_pem, key_pem, cert_der, key_der, sha256 })
    }

    /// The directory holding the files (removed when `self` drops).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The fingerprint as 64 lower-case hex digits.
    pub fn sha256_hex(&self) -> String {
        self.sha256.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The fingerprint as `openssl` prints it: upper-case pairs joined by `:`.
    pub fn sha256_colon_hex(&self) -> String {
        self.sha256.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
    }
}

/// Runs `openssl args…` bounded; returns its stdout, or an error carrying its stderr.
fn openssl(args: &[&std::ffi::OsStr]) -> io::Result<String> {
    let mut cmd = Command::new(OPENSSL);
    cmd.args(args);
    let shown = format!("{cmd:?}");
    let out = run_bounded(&mut cmd, OPENSSL_TIMEOUT)?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{shown}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `sha256 Fingerprint=AB:CD:…` (OpenSSL 3) or `SHA256 Fingerprint=…` (1.1) → 32 bytes.
fn parse_fingerprint(printed: &str) -> Option<[u8; 32]> {
    let hex = printed.lines().find_map(|l| l.split_once("Fingerprint=")).map(|(_, v)| v.trim())?;
    let bytes: Vec<u8> =
        hex.split(':').map(|pair| u8::from_str_radix(pair, 16).ok()).collect::<Option<Vec<u8>>>()?;
    bytes.try_into().ok()
}
