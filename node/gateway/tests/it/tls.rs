//! TLS on the gateway: a client that trusts the server's CA is served; one
//! that speaks plaintext, trusts another CA, or (under mutual TLS) brings no
//! certificate or one of another CA is refused; a bad key is refused at bind.

use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use yuchain_gateway::{Gateway, GatewayConfig, GatewayError, GatewayTls, WalletGatewayClient};
use yuchain_proto::pb;

use crate::support::{FAKE_CHAIN_ID, FakeBackend, TestGateway, bounded, test_config};

/// A CA, and certificates it issued.
struct Ca {
    certificate: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let key = KeyPair::generate().expect("a CA key");
        let certificate = params.self_signed(&key).expect("a CA certificate");
        Ca { certificate, key }
    }

    fn pem(&self) -> Vec<u8> {
        self.certificate.pem().into_bytes()
    }

    /// A certificate for `name` (a DNS name) and its key, as PEM.
    fn issue(&self, name: &str) -> (Vec<u8>, Vec<u8>) {
        let params = CertificateParams::new(vec![name.to_string()]).expect("leaf params");
        let key = KeyPair::generate().expect("a leaf key");
        let certificate = params
            .signed_by(&key, &self.certificate, &self.key)
            .expect("a leaf certificate");
        (
            certificate.pem().into_bytes(),
            key.serialize_pem().into_bytes(),
        )
    }
}

fn tls_config(ca: &Ca, client_ca: Option<&Ca>) -> GatewayConfig {
    let (certificate_pem, private_key_pem) = ca.issue("localhost");
    GatewayConfig {
        tls: Some(GatewayTls {
            certificate_pem,
            private_key_pem,
            client_ca_pem: client_ca.map(Ca::pem),
        }),
        ..test_config()
    }
}

fn https(gateway: &TestGateway) -> String {
    format!("https://{}", gateway.address)
}

/// Connects with TLS trusting `trusted`, presenting `identity` if given,
/// and asks for the chain info.
async fn chain_info(
    gateway: &TestGateway,
    trusted: &Ca,
    identity: Option<(Vec<u8>, Vec<u8>)>,
) -> Result<pb::GetChainInfoResponse, String> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(trusted.pem()))
        .domain_name("localhost");
    if let Some((certificate, key)) = identity {
        tls = tls.identity(Identity::from_pem(certificate, key));
    }
    let endpoint = Endpoint::from_shared(https(gateway))
        .expect("a URL")
        .tls_config(tls)
        .expect("client TLS settings")
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(5));
    let channel: Channel = bounded(endpoint.connect())
        .await
        .map_err(|error| format!("connect: {error:?}"))?;
    let mut client = WalletGatewayClient::new(channel);
    bounded(client.get_chain_info(pb::GetChainInfoRequest {}))
        .await
        .map(tonic::Response::into_inner)
        .map_err(|status| format!("{status:?}"))
}

#[tokio::test]
async fn a_client_trusting_the_servers_ca_is_served_over_tls() {
    let ca = Ca::new("bank CA");
    let gateway = TestGateway::start_with(tls_config(&ca, None), FakeBackend::new()).await;
    let info = chain_info(&gateway, &ca, None)
        .await
        .expect("served over TLS");
    assert_eq!(info.chain_id, FAKE_CHAIN_ID);
    gateway.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn plaintext_and_untrusted_clients_are_refused() {
    let ca = Ca::new("bank CA");
    let gateway = TestGateway::start_with(tls_config(&ca, None), FakeBackend::new()).await;

    // Plaintext HTTP/2 to a TLS port: the handshake fails, nothing is served.
    let plaintext = async {
        let mut client = WalletGatewayClient::connect(format!("http://{}", gateway.address))
            .await
            .map_err(|error| error.to_string())?;
        client
            .get_chain_info(pb::GetChainInfoRequest {})
            .await
            .map_err(|status| status.to_string())
    };
    assert!(
        bounded(plaintext).await.is_err(),
        "a plaintext client must not be served by a TLS gateway"
    );

    // A client that trusts another CA refuses the server's certificate.
    let other = Ca::new("another CA");
    let refused = chain_info(&gateway, &other, None).await;
    assert!(refused.is_err(), "an untrusted certificate was accepted");

    // The gateway still serves a good client afterwards.
    chain_info(&gateway, &ca, None)
        .await
        .expect("still served after refused handshakes");
    gateway.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn mutual_tls_serves_only_clients_with_a_certificate_of_its_ca() {
    let server_ca = Ca::new("gateway CA");
    let client_ca = Ca::new("back-office CA");
    let gateway =
        TestGateway::start_with(tls_config(&server_ca, Some(&client_ca)), FakeBackend::new()).await;

    let none = chain_info(&gateway, &server_ca, None).await;
    assert!(none.is_err(), "a client without a certificate was served");

    let stranger = Ca::new("stranger CA");
    let wrong = chain_info(&gateway, &server_ca, Some(stranger.issue("back-office"))).await;
    assert!(
        wrong.is_err(),
        "a client certificate of another CA was accepted"
    );

    let info = chain_info(&gateway, &server_ca, Some(client_ca.issue("back-office")))
        .await
        .expect("a client certificate of the configured CA is served");
    assert_eq!(info.chain_id, FAKE_CHAIN_ID);
    gateway.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn a_bad_certificate_or_key_is_refused_at_bind() {
    let ca = Ca::new("bank CA");
    let (certificate_pem, _) = ca.issue("localhost");
    let (_, other_key) = ca.issue("localhost");
    for (what, tls) in [
        (
            "garbage",
            GatewayTls {
                certificate_pem: b"not a certificate".to_vec(),
                private_key_pem: b"not a key".to_vec(),
                client_ca_pem: None,
            },
        ),
        (
            "a key of another certificate",
            GatewayTls {
                certificate_pem: certificate_pem.clone(),
                private_key_pem: other_key,
                client_ca_pem: None,
            },
        ),
    ] {
        let config = GatewayConfig {
            tls: Some(tls),
            ..test_config()
        };
        match bounded(Gateway::bind(config, FakeBackend::new())).await {
            Err(GatewayError::Config(message)) => {
                assert!(message.contains("TLS"), "{what}: {message}");
            }
            Err(other) => panic!("{what}: refused with the wrong error: {other}"),
            Ok(_) => panic!("{what}: bound with an unusable TLS identity"),
        }
    }
}

#[test]
fn the_private_key_is_never_printed() {
    let tls = GatewayTls {
        certificate_pem: b"cert".to_vec(),
        private_key_pem: b"-----BEGIN PRIVATE KEY-----secret".to_vec(),
        client_ca_pem: None,
    };
    let printed = format!("{tls:?}");
    assert!(!printed.contains("secret"), "{printed}");
    assert!(printed.contains("redacted"), "{printed}");
}
