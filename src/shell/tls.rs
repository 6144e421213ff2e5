//! TLS for HTTPS routers: the rustls client configuration (which certificates we trust) and
//! [`TlsSession`], a non-blocking buffer-in/buffer-out stage between the REST socket and
//! `wire::http`. Shell code: [`client_config`] reads CA files once at startup; a session
//! only moves bytes through the reader and writer the loop hands it, and never blocks.
//!
//! Certificate policy, chosen by [`client_config`] (first match wins):
//!
//! | config | what is accepted |
//! |---|---|
//! | `router.cert_sha256` set | exactly the end-entity certificate with that SHA-256; name, expiry and issuer are not checked |
//! | `router.verify_ssl: false` (the original's default) | any certificate; the caller logs [`INSECURE_WARNING`] |
//! | `router.verify_ssl: true` | WebPKI: a chain to `router.ca_file`, or else to the system store, valid now and for the host |
//!
//! In every mode the handshake signature is still verified against the presented
//! certificate, so the peer must hold its private key: a pin cannot be satisfied by replaying
//! someone else's certificate. Pinning ignores time on purpose: RouterOS self-signed
//! certificates often outlive their `notAfter`, and a router-side box without an RTC may
//! verify before NTP has set the clock (see STYLE.md §1.3).
//!
//! The session follows the poll loop's calling protocol (the loop owns the non-blocking
//! `TcpStream`; nothing here calls `complete_io` or wraps the socket in a blocking stream):
//!
//! ```text
//!   connect (non-blocking) ──► TlsSession::new(config, host)
//!   send_plaintext(request)            (buffered until the handshake is done)
//!   loop:
//!     interest = readable, plus writable while wants_write()
//!     writable → write_tls_to(&mut sock)                       (WouldBlock is Ok(0))
//!     readable → read_tls_from(&mut sock) until WouldBlock or Eof,
//!                then recv_plaintext(&mut buf)                  (drain after every read)
//!     Err(e)   → write_tls_to(&mut sock) once (flushes the alert), close, report e
//!   done: send_close_notify(), write_tls_to, close
//! ```
//!
//! SHA-256 comes from the crypto provider itself (the hash of a TLS 1.3 suite of ring's
//! provider), not from a hand-written implementation or a direct `ring` dependency: it is
//! the audited code that already runs the handshake, and it costs no extra crate.

use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::hash::{Hash, HashAlgorithm};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    AlertDescription, CertificateError, ClientConfig, ClientConnection, DigitallySignedStruct, OtherError,
    RootCertStore, SignatureScheme,
};

/// Logged once at startup when `router.verify_ssl` is false and no pin is set.
pub const INSECURE_WARNING: &str = "router.verify_ssl is false: the router's TLS certificate is \
not checked, so anyone on the path can impersonate the router and read the REST password. Pin \
the certificate with router.cert_sha256 instead (the fingerprint is logged on every connect, or \
run: openssl s_client -connect HOST:443 </dev/null | openssl x509 -noout -fingerprint -sha256)";

/// Where the system CA store is looked for, in order; the first that yields certificates
/// wins. Bundles of Debian/Ubuntu/Alpine/OpenWrt, macOS-style/BSD, Fedora/RHEL and
/// openSUSE, then the hashed directory (only its `*.pem`/`*.crt` files are read, so hash
/// symlinks to the same files don't load every root twice).
pub const SYSTEM_CA_PATHS: [&str; 5] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/ssl/cert.pem",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/certs",
];

/// Builds the client configuration for the router connection (ring provider, TLS 1.2 and
/// 1.3, no client certificate). `pin_sha256` wins over `verify`; `ca_file` matters only
/// when `verify` is true. Errors name the file and the problem, ready for one stderr line.
pub fn client_config(
    verify: bool,
    ca_file: Option<&Path>,
    pin_sha256: Option<[u8; 32]>,
) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let algorithms = provider.signature_verification_algorithms;
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: crypto provider: {e}"))?;
    let config = match (pin_sha256, verify) {
        (Some(pin), _) => {
            let sha256 = sha256_hash(&provider)?;
            let verifier = OwnVerifier { pin: Some((pin, sha256)), algorithms };
            builder.dangerous().with_custom_certificate_verifier(Arc::new(verifier)).with_no_client_auth()
        }
        (None, false) => {
            let verifier = OwnVerifier { pin: None, algorithms };
            builder.dangerous().with_custom_certificate_verifier(Arc::new(verifier)).with_no_client_auth()
        }
        (None, true) => {
            let roots = match ca_file {
                Some(path) => roots_from_ca_file(path)?,
                None => system_roots(&SYSTEM_CA_PATHS.map(Path::new))?,
            };
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    Ok(Arc::new(config))
}

/// Formats a fingerprint the way `openssl x509 -fingerprint` does (`AB:CD:…`), so the
/// logged value can be compared by eye and pasted into `router.cert_sha256`.
pub fn format_fingerprint(fp: &[u8; 32]) -> String {
    let mut s = String::with_capacity(32 * 3);
    for (i, b) in fp.iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        s.push_str(&format!("{b:02X}"));
    }
    s
}

/// The provider's SHA-256. Every TLS 1.3 suite names its hash; ring's default provider
/// always has `TLS13_AES_128_GCM_SHA256`, so a miss means a misbuilt provider.
fn sha256_hash(provider: &CryptoProvider) -> Result<&'static dyn Hash, String> {
    provider
        .cipher_suites
        .iter()
        .filter_map(|suite| suite.tls13())
        .map(|suite| suite.common.hash_provider)
        .find(|hash| hash.algorithm() == HashAlgorithm::SHA256)
        .ok_or_else(|| "TLS: the crypto provider offers no SHA-256".to_string())
}

fn sha256_of(hash: &dyn Hash, data: &[u8]) -> [u8; 32] {
    let out = hash.hash(data);
    let mut fp = [0u8; 32];
    // `hash` was selected for HashAlgorithm::SHA256, whose output is 32 bytes.
    fp.copy_from_slice(&out.as_ref()[..32]);
    fp
}

// ---------------------------------------------------------------------------------------
// Trust roots

/// `router.ca_file`: strict. Every PEM `CERTIFICATE` block must parse and be a usable
/// trust anchor; other blocks (a key in the same file) are skipped. A file without PEM
/// blocks that looks like DER (starts with a SEQUENCE tag) is taken as one DER certificate.
fn roots_from_ca_file(path: &Path) -> Result<RootCertStore, String> {
    let what = || format!("router.ca_file {}", path.display());
    let bytes = fs::read(path).map_err(|e| format!("{}: {e}", what()))?;
    let mut roots = RootCertStore::empty();
    for (i, item) in CertificateDer::pem_slice_iter(&bytes).enumerate() {
        let cert = item.map_err(|e| format!("{}: certificate #{}: bad PEM: {e}", what(), i + 1))?;
        roots.add(cert).map_err(|e| format!("{}: certificate #{}: {e}", what(), i + 1))?;
    }
    if roots.is_empty() {
        if bytes.first() != Some(&0x30) {
            return Err(format!(
                "{}: no certificate found (expected PEM \"-----BEGIN CERTIFICATE-----\")",
                what()
            ));
        }
        roots
            .add(CertificateDer::from(bytes))
            .map_err(|e| format!("{}: not a DER certificate: {e}", what()))?;
    }
    Ok(roots)
}

/// The system store: the first candidate that yields at least one certificate. Lenient,
/// unlike `ca_file`: a bundle with one odd entry still loads the rest (webpki skips the
/// certificates it cannot use as anchors).
fn system_roots(candidates: &[&Path]) -> Result<RootCertStore, String> {
    let mut tried = Vec::with_capacity(candidates.len());
    for path in candidates {
        let meta = match fs::metadata(path) {
            Ok(meta) => meta,
            Err(e) => {
                tried.push(format!("{} ({})", path.display(), short_io(&e)));
                continue;
            }
        };
        let certs = if meta.is_dir() { certs_from_dir(path) } else { certs_from_bundle(path) };
        let mut roots = RootCertStore::empty();
        match certs {
            Ok(certs) => {
                roots.add_parsable_certificates(certs);
            }
            Err(problem) => {
                tried.push(format!("{} ({problem})", path.display()));
                continue;
            }
        }
        if !roots.is_empty() {
            return Ok(roots);
        }
        tried.push(format!("{} (no usable certificate)", path.display()));
    }
    Err(format!(
        "TLS: router.verify_ssl is true but no system CA certificates were found; tried {}; set \
         router.ca_file to the CA that signed the router's certificate, or pin it with router.cert_sha256",
        tried.join(", ")
    ))
}

fn certs_from_bundle(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = fs::read(path).map_err(|e| short_io(&e))?;
    // Stop at the first malformed block but keep what came before it.
    Ok(CertificateDer::pem_slice_iter(&bytes).map_while(Result::ok).collect())
}

fn certs_from_dir(dir: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let mut files: Vec<_> = fs::read_dir(dir)
        .map_err(|e| short_io(&e))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|p| p.extension().is_some_and(|ext| ext == "pem" || ext == "crt"))
        .collect();
    // read_dir order is arbitrary; sorting makes the store (and any failure) reproducible.
    files.sort();
    let mut certs = Vec::new();
    for file in files {
        // A dangling symlink or unreadable file in a system directory is not our problem.
        if let Ok(mut more) = certs_from_bundle(&file) {
            certs.append(&mut more);
        }
    }
    Ok(certs)
}

fn short_io(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "not found".to_string(),
        io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => e.to_string(),
    }
}

// ---------------------------------------------------------------------------------------
// Verifiers

/// The verifier for `router.cert_sha256` (accept exactly one end-entity certificate) and for
/// `router.verify_ssl: false` (accept any certificate). Either way the handshake must be
/// signed by the key of the certificate presented.
struct OwnVerifier {
    /// `None`: any certificate.
    pin: Option<([u8; 32], &'static dyn Hash)>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl fmt::Debug for OwnVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.pin {
            Some((pin, _)) => {
                f.debug_struct("PinnedCert").field("pin", &format_fingerprint(pin)).finish_non_exhaustive()
            }
            None => f.write_str("AnyCert"),
        }
    }
}

impl ServerCertVerifier for OwnVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some((pin, sha256)) = self.pin else { return Ok(ServerCertVerified::assertion()) };
        let got = sha256_of(sha256, end_entity.as_ref());
        // A plain comparison is fine: the pin is a public fingerprint, not a secret.
        if got == pin {
            Ok(ServerCertVerified::assertion())
        } else {
            let mismatch = PinMismatch { presented: got };
            Err(rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(mismatch)))))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The pinned verifier's rejection, carried through rustls as `CertificateError::Other`
/// and recognised again in [`describe`].
#[derive(Debug)]
struct PinMismatch {
    presented: [u8; 32],
}

impl fmt::Display for PinMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "certificate does not match the pinned SHA-256 (router.cert_sha256); the router presented {} \
             (if its certificate was replaced on purpose, pin the new one)",
            format_fingerprint(&self.presented)
        )
    }
}

impl std::error::Error for PinMismatch {}

/// The text after `TLS: ` for a rustls error: what failed and, where we know, what to do.
fn describe(err: &rustls::Error) -> String {
    const SELF_SIGNED_HINT: &str =
        "set router.ca_file to the CA that signed it, or pin it with router.cert_sha256";
    match err {
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
            format!("certificate is not signed by a trusted CA (self-signed?); {SELF_SIGNED_HINT}")
        }
        rustls::Error::InvalidCertificate(CertificateError::Other(other)) => {
            if let Some(pin) = other.0.downcast_ref::<PinMismatch>() {
                return pin.to_string();
            }
            // webpki is not a direct dependency, so its error can't be downcast; its Display
            // is the variant name. This only picks the hint: the text is kept either way.
            let text = other.to_string();
            if text.contains("CaUsedAsEndEntity") {
                format!(
                    "certificate rejected ({text}): the router presents a CA certificate as its server \
                     certificate (common for self-signed ones), which WebPKI refuses; pin it \
                     with router.cert_sha256 instead"
                )
            } else {
                format!("certificate rejected: {text}")
            }
        }
        rustls::Error::AlertReceived(AlertDescription::HandshakeFailure) => {
            "the router refused the handshake \
            (handshake_failure alert): no common cipher suite or version; RouterOS www-ssl with \
            certificate=none offers only anonymous ciphers"
                .to_string()
        }
        other => other.to_string(),
    }
}

fn tls_error(err: &rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("TLS: {}", describe(err)))
}

// ---------------------------------------------------------------------------------------
// Session

/// What [`TlsSession::read_tls_from`] saw on the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadOutcome {
    /// This many TLS bytes were read and processed; drain [`TlsSession::recv_plaintext`].
    Data(usize),
    /// The peer closed TCP. Drain plaintext: a close without `close_notify` shows up there.
    Eof,
    /// Nothing to read now.
    WouldBlock,
}

/// One TLS client connection, driven by the poll loop over a socket it owns (module docs).
pub struct TlsSession {
    conn: ClientConnection,
    sha256: &'static dyn Hash,
    eof: bool,
}

impl fmt::Debug for TlsSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsSession")
            .field("handshaking", &self.conn.is_handshaking())
            .field("eof", &self.eof)
            .finish_non_exhaustive()
    }
}

impl TlsSession {
    /// Starts a client session to `host` (the configured router address). An IP address
    /// (also `[v6]`) is verified against the certificate's IP SANs and sends no SNI; anything
    /// else must be a DNS name.
    pub fn new(config: Arc<ClientConfig>, host: &str) -> Result<TlsSession, String> {
        let sha256 = sha256_hash(config.crypto_provider())?;
        let name = server_name(host)?;
        let conn = ClientConnection::new(config, name)
            .map_err(|e| format!("TLS: start session with {host}: {e}"))?;
        Ok(TlsSession { conn, sha256, eof: false })
    }

    /// Whether TLS bytes are waiting for the socket: poll for writable while true.
    pub fn wants_write(&self) -> bool {
        self.conn.wants_write()
    }

    /// Whether rustls wants more TLS bytes (false once the peer has closed).
    pub fn wants_read(&self) -> bool {
        self.conn.wants_read()
    }

    /// Whether the handshake is still running.
    pub fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// Writes pending TLS bytes to `w` until it would block or nothing is pending. Returns
    /// the bytes written; `WouldBlock` (and EINTR) is `Ok` with what was written so far.
    pub fn write_tls_to(&mut self, w: &mut impl Write) -> io::Result<usize> {
        let mut total = 0;
        // Each pass either writes some bytes or leaves the loop, and the pending buffer is
        // finite, so this ends.
        while self.conn.wants_write() {
            match self.conn.write_tls(w) {
                Ok(0) => break,
                Ok(n) => total += n,
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => break,
                Err(e) => return Err(e),
            }
        }
        Ok(total)
    }

    /// Reads one chunk of TLS bytes from `r` and processes it. Call until `WouldBlock` or
    /// `Eof` when the socket is readable, and drain [`Self::recv_plaintext`] after each
    /// `Data` (rustls refuses to read more while too much plaintext is waiting). A TLS error
    /// comes back as `InvalidData` with a message starting `TLS: `; flush the alert with
    /// [`Self::write_tls_to`] and close.
    pub fn read_tls_from(&mut self, r: &mut impl Read) -> io::Result<ReadOutcome> {
        let n = match self.conn.read_tls(r) {
            Ok(n) => n,
            // EINTR on a non-blocking socket: the fd stays readable and the level-triggered
            // poll reports it again, so "not now" is accurate.
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {
                return Ok(ReadOutcome::WouldBlock);
            }
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Ok(ReadOutcome::Eof);
        }
        self.conn.process_new_packets().map_err(|e| tls_error(&e))?;
        Ok(ReadOutcome::Data(n))
    }

    /// Buffers plaintext for sending (before the handshake finishes too). Returns how much
    /// was accepted: less than `data.len()` when rustls's send buffer is full; write TLS
    /// out and offer the rest again.
    pub fn send_plaintext(&mut self, data: &[u8]) -> io::Result<usize> {
        self.conn.writer().write(data)
    }

    /// Appends all decrypted bytes available now to `out` and returns how many. `Ok(0)`
    /// with [`Self::is_eof`] means the peer sent `close_notify`. A TCP close without
    /// `close_notify` is `UnexpectedEof` once the data before it has been returned (RouterOS
    /// may close this way; a complete `Content-Length` body is still complete).
    pub fn recv_plaintext(&mut self, out: &mut Vec<u8>) -> io::Result<usize> {
        let mut buf = [0u8; 4096];
        let mut total = 0;
        // Each Ok(n > 0) consumes from rustls's finite plaintext buffer, so this ends.
        loop {
            match self.conn.reader().read(&mut buf) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(total);
                }
                Ok(n) => {
                    out.extend_from_slice(&buf[..n]);
                    total += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(total),
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    if total > 0 {
                        return Ok(total);
                    }
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "TLS: the router closed the connection without close_notify",
                    ));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Whether the peer's `close_notify` arrived and all plaintext before it was drained.
    pub fn is_eof(&self) -> bool {
        self.eof
    }

    /// Queues a `close_notify` alert; write it out with [`Self::write_tls_to`].
    pub fn send_close_notify(&mut self) {
        self.conn.send_close_notify();
    }

    /// SHA-256 of the router's end-entity certificate once the handshake has seen it: log
    /// it (with [`format_fingerprint`]) on connect so the user can pin it.
    pub fn peer_cert_sha256(&self) -> Option<[u8; 32]> {
        let cert = self.conn.peer_certificates()?.first()?;
        Some(sha256_of(self.sha256, cert.as_ref()))
    }
}

fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(ServerName::from(ip));
    }
    ServerName::try_from(bare.to_string())
        .map_err(|_| format!("TLS: router host {host:?} is neither an IP address nor a valid DNS name"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_sha256_matches_fips_180_4_vectors() {
        let provider = rustls::crypto::ring::default_provider();
        let hash = sha256_hash(&provider).expect("ring has SHA-256");
        // FIPS 180-4 examples (NIST CSRC "SHA256.pdf"): "abc" and the 448-bit message.
        let rows: [(&str, &[u8], &str); 3] = [
            (
                "empty",
                b"",
                "E3:B0:C4:42:98:FC:1C:14:9A:FB:F4:C8:99:6F:B9:24:27:AE:41:E4:64:9B:93:4C:A4:95:99:1B:78:52:B8:55",
            ),
            (
                "abc",
                b"abc",
                "BA:78:16:BF:8F:01:CF:EA:41:41:40:DE:5D:AE:22:23:B0:03:61:A3:96:17:7A:9C:B4:10:FF:61:F2:00:15:AD",
            ),
            (
                "two_blocks",
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
                "24:8D:6A:61:D2:06:38:B8:E5:C0:26:93:0C:3E:60:39:A3:3C:E4:59:64:FF:21:67:F6:EC:ED:D4:19:DB:06:C1",
            ),
        ];
        for (name, input, want) in rows {
            assert_eq!(format_fingerprint(&sha256_of(hash, input)), want, "{name}");
        }
    }

    #[test]
    fn server_name_ip_or_dns() {
        let rows: [(&str, &str, Option<&str>); 6] = [
            ("v4", "192.168.88.1", Some("IpAddress")),
            ("v6", "fe80::1", Some("IpAddress")),
            ("v6_bracketed", "[2001:db8::1]", Some("IpAddress")),
            ("dns", "router.lan", Some("DnsName")),
            ("dns_single_label", "gw", Some("DnsName")),
            ("space", "bad host", None),
        ];
        for (name, host, want) in rows {
            let got = server_name(host).ok().map(|n| format!("{n:?}"));
            match want {
                Some(kind) => assert!(got.as_deref().is_some_and(|g| g.starts_with(kind)), "{name}: {got:?}"),
                None => assert_eq!(got, None, "{name}"),
            }
        }
    }

    #[test]
    fn system_roots_none_found_names_paths_and_ca_file() {
        let dir = std::env::temp_dir().join(format!("wanctl-tls-roots-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("temp dir");
        let empty_bundle = dir.join("empty.crt");
        fs::write(&empty_bundle, "not a certificate\n").expect("write");
        let missing = dir.join("missing.crt");
        let err = system_roots(&[missing.as_path(), empty_bundle.as_path(), dir.as_path()])
            .expect_err("nothing to load");
        let _ = fs::remove_dir_all(&dir);
        assert!(err.contains(&format!("{} (not found)", missing.display())), "{err}");
        assert!(err.contains(&format!("{} (no usable certificate)", empty_bundle.display())), "{err}");
        assert!(err.contains("router.ca_file"), "{err}");
    }

    #[test]
    fn ca_file_errors_name_the_file() {
        let dir = std::env::temp_dir().join(format!("wanctl-tls-ca-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("temp dir");
        let missing = dir.join("nope.pem");
        let garbage = dir.join("garbage.pem");
        fs::write(&garbage, "hello\n").expect("write");
        let bad_pem = dir.join("bad.pem");
        fs::write(&bad_pem, "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n").expect("write");
        let rows = [
            ("missing", &missing, "No such file"),
            ("garbage", &garbage, "no certificate found"),
            ("bad_pem", &bad_pem, "certificate #1"),
        ];
        for (name, path, want) in rows {
            let err = client_config(true, Some(path), None).expect_err(name);
            assert!(err.starts_with(&format!("router.ca_file {}: ", path.display())), "{name}: {err}");
            assert!(err.contains(want), "{name}: {err}");
        }
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn insecure_warning_names_the_safe_alternative() {
        assert!(INSECURE_WARNING.contains("router.cert_sha256"));
        assert!(INSECURE_WARNING.contains("openssl x509 -noout -fingerprint -sha256"));
    }
}
