//! `wanctl::shell::tls` against a real rustls server on 127.0.0.1, with certificates made by
//! the `openssl` CLI. The client side is driven the way the daemon drives it: a non-blocking
//! `TcpStream` in our own `PollSet`, TLS bytes moved by `TlsSession`. The server is a plain
//! blocking rustls server in a thread. Every loop is bounded in iterations and time.
//!
//! Two certificates: `leaf` (CA:FALSE, serverAuth; what a CA-issued router certificate looks
//! like) and `ca_like` (openssl's default self-signed CA:TRUE, as RouterOS self-signed
//! certificates usually are). RouterOS `www-ssl` speaks TLS ≤ 1.2 (ROUTEROS.md §1.1), so the
//! pinned and insecure modes are also run against a TLS 1.2-only server.
#![cfg(feature = "tls")]
#![allow(clippy::unwrap_used)]

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use wanctl::shell::tls::{self, ReadOutcome, TlsSession};
use wanctl::sys::poll::{Events, Interest, PollSet};

const OPENSSL: &str = "/usr/bin/openssl";
const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
const REQUEST: &[u8] = b"GET /rest/system/identity HTTP/1.1\r\nHost: router\r\n\r\n";
const LIMIT: Duration = Duration::from_secs(10);

static UNIQUE: AtomicU32 = AtomicU32::new(0);

/// A certificate and key in a private temp dir, removed on drop.
struct Cert {
    dir: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl Cert {
    fn new(ca_like: bool) -> Cert {
        let n = UNIQUE.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("wanctl-tls-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        let mut args: Vec<&str> = vec![
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ];
        if !ca_like {
            args.extend([
                "-addext",
                "basicConstraints=critical,CA:FALSE",
                "-addext",
                "extendedKeyUsage=serverAuth",
            ]);
        }
        let out = Command::new(OPENSSL)
            .args(&args)
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .unwrap();
        assert!(out.status.success(), "openssl req: {}", String::from_utf8_lossy(&out.stderr));
        Cert { dir, cert, key }
    }

    /// What `openssl x509 -fingerprint -sha256` says, as bytes.
    fn openssl_sha256(&self) -> [u8; 32] {
        let out = Command::new(OPENSSL)
            .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
            .arg(&self.cert)
            .output()
            .unwrap();
        assert!(out.status.success(), "openssl x509: {}", String::from_utf8_lossy(&out.stderr));
        // "sha256 Fingerprint=AB:CD:…" (OpenSSL 3) or "SHA256 Fingerprint=…" (1.1).
        let text = String::from_utf8(out.stdout).unwrap();
        let hex = text.trim().rsplit('=').next().unwrap();
        let bytes: Vec<u8> = hex.split(':').map(|b| u8::from_str_radix(b, 16).unwrap()).collect();
        bytes.try_into().unwrap()
    }
}

impl Drop for Cert {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[derive(Clone, Copy)]
enum Versions {
    Default,
    Tls12Only,
}

/// A one-connection blocking rustls server. The thread returns the request it read, or
/// why it failed (expected when the client rejects the certificate).
fn start_server(cert: &Cert, versions: Versions) -> (u16, JoinHandle<Result<Vec<u8>, String>>) {
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(&cert.cert).unwrap().collect::<Result<_, _>>().unwrap();
    let key = PrivateKeyDer::from_pem_file(&cert.key).unwrap();
    let builder =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()));
    let builder = match versions {
        Versions::Default => builder.with_safe_default_protocol_versions(),
        Versions::Tls12Only => builder.with_protocol_versions(&[&rustls::version::TLS12]),
    };
    let config = Arc::new(builder.unwrap().with_no_client_auth().with_single_cert(chain, key).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = thread::spawn(move || serve_one(&listener, config).map_err(|e| e.to_string()));
    (port, handle)
}

fn serve_one(listener: &TcpListener, config: Arc<rustls::ServerConfig>) -> io::Result<Vec<u8>> {
    listener.set_nonblocking(true)?;
    let deadline = Instant::now() + LIMIT;
    let mut sock = loop {
        match listener.accept() {
            Ok((sock, _)) => break sock,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(e),
        }
    };
    sock.set_nonblocking(false)?;
    sock.set_read_timeout(Some(LIMIT))?;
    sock.set_write_timeout(Some(LIMIT))?;
    let mut conn = rustls::ServerConnection::new(config).map_err(io::Error::other)?;
    let mut request = Vec::new();
    {
        let mut stream = rustls::Stream::new(&mut conn, &mut sock);
        let mut buf = [0u8; 1024];
        for _ in 0..64 {
            if request.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
            match stream.read(&mut buf)? {
                0 => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "client closed before a request",
                    ));
                }
                n => request.extend_from_slice(&buf[..n]),
            }
        }
        stream.write_all(RESPONSE)?;
    }
    conn.send_close_notify();
    for _ in 0..64 {
        if !conn.wants_write() {
            break;
        }
        conn.write_tls(&mut sock)?;
    }
    Ok(request)
}

/// What one client exchange produced.
struct Exchange {
    response: Vec<u8>,
    peer_sha256: Option<[u8; 32]>,
    clean_close: bool,
}

/// Connects to the server, sends [`REQUEST`] and reads until the server's close_notify,
/// driving the session from a poll loop over a non-blocking socket, as the daemon does.
fn exchange(config: Arc<rustls::ClientConfig>, host: &str, port: u16) -> Result<Exchange, String> {
    let mut sock = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    sock.set_nonblocking(true).unwrap();
    let mut session = TlsSession::new(config, host)?;
    // Queued before the handshake: rustls holds it until the keys are ready.
    assert_eq!(session.send_plaintext(REQUEST).unwrap(), REQUEST.len());
    assert!(session.is_handshaking());

    let mut poll = PollSet::new();
    poll.register(sock.as_fd(), 0, Interest::BOTH).unwrap();
    let mut events = Events::with_capacity(1);
    let mut response = Vec::new();
    let deadline = Instant::now() + LIMIT;
    for _ in 0..10_000 {
        if Instant::now() > deadline {
            return Err("client: timed out".into());
        }
        let interest = Interest { readable: true, writable: session.wants_write() };
        poll.set_interest(0, interest).unwrap();
        poll.poll(&mut events, Some(Duration::from_millis(100))).unwrap();
        let Some(ev) = events.iter().next().copied() else { continue };
        if ev.writable {
            session.write_tls_to(&mut sock).map_err(|e| e.to_string())?;
        }
        if !(ev.readable || ev.hangup || ev.error) {
            continue;
        }
        let mut eof = false;
        for _ in 0..1_000 {
            match session.read_tls_from(&mut sock) {
                Ok(ReadOutcome::Data(_)) => {
                    session.recv_plaintext(&mut response).map_err(|e| e.to_string())?;
                }
                Ok(ReadOutcome::Eof) => {
                    eof = true;
                    break;
                }
                Ok(ReadOutcome::WouldBlock) => break,
                Err(e) => {
                    // Tell the server why (the alert), as the daemon does before closing.
                    let _ = session.write_tls_to(&mut sock);
                    return Err(e.to_string());
                }
            }
        }
        if session.is_eof() || eof {
            if !session.is_eof() {
                session.recv_plaintext(&mut response).map_err(|e| e.to_string())?;
            }
            return Ok(Exchange {
                response,
                peer_sha256: session.peer_cert_sha256(),
                clean_close: session.is_eof(),
            });
        }
    }
    Err("client: iteration limit".into())
}

/// Runs one exchange and joins the server; returns the client's result.
fn run(
    config: Arc<rustls::ClientConfig>,
    host: &str,
    cert: &Cert,
    versions: Versions,
) -> Result<Exchange, String> {
    let (port, server) = start_server(cert, versions);
    let result = exchange(config, host, port);
    let served = server.join().unwrap();
    if let Ok(x) = &result {
        assert_eq!(served.as_deref(), Ok(REQUEST), "server side");
        assert_eq!(x.response, RESPONSE, "response: {:?}", String::from_utf8_lossy(&x.response));
        assert!(x.clean_close, "server sent close_notify");
    }
    result
}

#[test]
fn insecure_completes_handshake_and_http_round_trips() {
    let cert = Cert::new(true);
    for versions in [Versions::Default, Versions::Tls12Only] {
        let config = tls::client_config(false, None, None).unwrap();
        run(config, "127.0.0.1", &cert, versions).unwrap();
    }
}

#[test]
fn peer_cert_sha256_equals_openssl_fingerprint() {
    let cert = Cert::new(true);
    let config = tls::client_config(false, None, None).unwrap();
    let x = run(config, "localhost", &cert, Versions::Default).unwrap();
    let want = cert.openssl_sha256();
    assert_eq!(x.peer_sha256, Some(want));
    assert_eq!(tls::format_fingerprint(&want).len(), 32 * 3 - 1);
}

#[test]
fn verify_with_system_store_rejects_self_signed() {
    let cert = Cert::new(false);
    let config = match tls::client_config(true, None, None) {
        Ok(config) => config,
        Err(e) => {
            // A host without a CA bundle: the error itself is what the user would see.
            assert!(e.contains("router.ca_file") && e.contains("/etc/ssl/certs"), "{e}");
            eprintln!("skipped: no system CA store ({e})");
            return;
        }
    };
    let err = run(config, "localhost", &cert, Versions::Default).err().expect("self-signed must be rejected");
    assert!(err.starts_with("TLS: certificate is not signed by a trusted CA"), "{err}");
    assert!(err.contains("router.ca_file") && err.contains("router.cert_sha256"), "{err}");
}

#[test]
fn verify_with_ca_file_accepts_the_certificate() {
    let cert = Cert::new(false);
    // A DNS name (SNI sent) and an IP address (no SNI; matched against the IP SAN).
    for host in ["localhost", "127.0.0.1"] {
        let config = tls::client_config(true, Some(&cert.cert), None).unwrap();
        run(config, host, &cert, Versions::Default).unwrap_or_else(|e| panic!("{host}: {e}"));
    }
}

#[test]
fn verify_with_ca_file_rejects_another_name() {
    let cert = Cert::new(false);
    let config = tls::client_config(true, Some(&cert.cert), None).unwrap();
    let err = run(config, "router.example", &cert, Versions::Default).err().expect("wrong name");
    assert!(err.starts_with("TLS: "), "{err}");
    assert!(err.contains("router.example"), "{err}");
}

#[test]
fn verify_with_ca_file_explains_a_ca_certificate_used_as_server_certificate() {
    let cert = Cert::new(true);
    let config = tls::client_config(true, Some(&cert.cert), None).unwrap();
    let err = run(config, "localhost", &cert, Versions::Default).err().expect("CA as end entity");
    assert!(err.starts_with("TLS: certificate rejected"), "{err}");
    assert!(err.contains("router.cert_sha256"), "{err}");
}

#[test]
fn pin_with_correct_sha256_succeeds_and_wins_over_verify() {
    let cert = Cert::new(true);
    let pin = cert.openssl_sha256();
    for (verify, versions) in
        [(false, Versions::Default), (true, Versions::Default), (true, Versions::Tls12Only)]
    {
        // verify=true with no usable CA would fail without the pin: the pin decides alone.
        let config = tls::client_config(verify, Some(Path::new("/nonexistent/ca.pem")), Some(pin)).unwrap();
        let x = run(config, "127.0.0.1", &cert, versions).unwrap();
        assert_eq!(x.peer_sha256, Some(pin));
    }
}

#[test]
fn pin_with_wrong_sha256_fails_with_pinning_message() {
    let cert = Cert::new(true);
    let mut pin = cert.openssl_sha256();
    pin[0] ^= 0xff;
    for versions in [Versions::Default, Versions::Tls12Only] {
        let config = tls::client_config(false, None, Some(pin)).unwrap();
        let err = run(config, "127.0.0.1", &cert, versions).err().expect("wrong pin");
        assert!(err.starts_with("TLS: certificate does not match the pinned SHA-256"), "{err}");
        // The presented fingerprint is in the message, so a deliberate re-key is easy to pin.
        assert!(err.contains(&tls::format_fingerprint(&cert.openssl_sha256())), "{err}");
    }
}

#[test]
fn bad_host_is_a_clear_error() {
    let config = tls::client_config(false, None, None).unwrap();
    let err = TlsSession::new(config, "not a host").unwrap_err();
    assert!(err.contains("\"not a host\""), "{err}");
}
