//! A TLS server on 127.0.0.1 with a certificate made up by the test (`rcgen`), in front of a
//! plain-HTTP upstream (the simulator). It counts what reached it: TCP connections (each one a
//! TLS attempt by the client), handshakes the client completed, and bytes of decrypted
//! application data (an HTTP request, NLAuth password and all, can only arrive as those).
//! A handshake that completes is relayed to the upstream, so a certificate the client does
//! trust gives a working endpoint: the control that shows the counters count.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, date_time_ymd};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// The certificate the server presents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Presented {
    /// Self-signed, for 127.0.0.1 and localhost.
    SelfSigned,
    /// Issued by the test CA for `other.example`, not for 127.0.0.1.
    OtherName,
    /// Issued by the test CA for 127.0.0.1 and localhost, valid only in the year 2000.
    Expired,
    /// Issued by the test CA for 127.0.0.1 and localhost, valid now: trusted wherever the test
    /// CA is.
    Valid,
}

/// A CA made up for one test. Nothing trusts it unless told to (`SSL_CERT_FILE`).
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    /// The CA certificate in PEM, to write where a trust store is read from.
    pub pem: String,
}

impl TestCa {
    pub fn new() -> TestCa {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "netsuite-token-rotator test CA");
        let pem = params.self_signed(&key).unwrap().pem();
        TestCa {
            issuer: Issuer::new(params, key),
            pem,
        }
    }

    /// The certificate chain and key the server presents for `presented`.
    fn leaf(&self, presented: Presented) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let key = KeyPair::generate().unwrap();
        let names = match presented {
            Presented::OtherName => vec!["other.example".to_string()],
            _ => vec!["127.0.0.1".to_string(), "localhost".to_string()],
        };
        let mut params = CertificateParams::new(names).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "netsuite test endpoint");
        if presented == Presented::Expired {
            params.not_before = date_time_ymd(2000, 1, 1);
            params.not_after = date_time_ymd(2001, 1, 1);
        }
        let cert = match presented {
            Presented::SelfSigned => params.self_signed(&key).unwrap(),
            _ => params.signed_by(&key, &self.issuer).unwrap(),
        };
        let der = cert.der().clone();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        (der, key)
    }
}

/// What reached the server.
#[derive(Default, Debug)]
pub struct Seen {
    /// TCP connections accepted: each is one TLS attempt by the client.
    pub connections: AtomicU64,
    /// Handshakes the client completed (it accepted the certificate).
    pub handshakes: AtomicU64,
    /// Bytes of decrypted application data received from clients.
    pub application_bytes: AtomicU64,
}

impl Seen {
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::SeqCst)
    }
    pub fn handshakes(&self) -> u64 {
        self.handshakes.load(Ordering::SeqCst)
    }
    pub fn application_bytes(&self) -> u64 {
        self.application_bytes.load(Ordering::SeqCst)
    }
}

pub struct TlsServer {
    pub address: SocketAddr,
    pub seen: Arc<Seen>,
}

impl TlsServer {
    /// Serves `presented` (made by `ca`) on a free loopback port and relays completed
    /// handshakes to the plain-HTTP `upstream`.
    pub async fn start(ca: &TestCa, presented: Presented, upstream: SocketAddr) -> TlsServer {
        let (cert, key) = ca.leaf(presented);
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let seen = Arc::new(Seen::default());
        let counters = seen.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counters.connections.fetch_add(1, Ordering::SeqCst);
                let acceptor = acceptor.clone();
                let counters = counters.clone();
                tokio::spawn(async move {
                    // A client that refuses the certificate ends the handshake with an alert.
                    let Ok(tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    counters.handshakes.fetch_add(1, Ordering::SeqCst);
                    relay(tls, upstream, &counters).await;
                });
            }
        });
        TlsServer { address, seen }
    }

    /// `https://127.0.0.1:PORT`, an endpoint base URL.
    pub fn base_url(&self) -> String {
        format!("https://{}", self.address)
    }
}

/// Copies the decrypted stream to `upstream` (counting it) and the answers back.
async fn relay(
    tls: tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    upstream: SocketAddr,
    counters: &Seen,
) {
    let Ok(upstream) = tokio::net::TcpStream::connect(upstream).await else {
        return;
    };
    let (mut from_client, mut to_client) = tokio::io::split(tls);
    let (mut from_upstream, mut to_upstream) = upstream.into_split();
    let requests = async {
        let mut buf = [0u8; 8192];
        while let Ok(n) = from_client.read(&mut buf).await {
            if n == 0 {
                break;
            }
            counters
                .application_bytes
                .fetch_add(n as u64, Ordering::SeqCst);
            if to_upstream.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = to_upstream.shutdown().await;
    };
    let answers = async {
        let _ = tokio::io::copy(&mut from_upstream, &mut to_client).await;
        let _ = to_client.shutdown().await;
    };
    tokio::join!(requests, answers);
}
