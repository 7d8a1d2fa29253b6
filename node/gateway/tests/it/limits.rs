//! Serving: the request size limit, health, bind and shutdown.

use std::sync::Arc;

use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use yuchain_gateway::{Gateway, GatewayConfig, GatewayError};
use yuchain_proto::pb;
use yuchain_proto::pb::TransactionStatus;

use crate::support::{FakeBackend, TestGateway, bounded, submit_request, test_config, transaction};

#[tokio::test]
async fn a_request_over_the_size_limit_is_refused_and_the_server_keeps_serving() {
    let config = GatewayConfig {
        request_bytes_max: 1024,
        ..test_config()
    };
    let gateway = TestGateway::start_with(config, FakeBackend::new()).await;
    let mut client = gateway.client().await;
    let oversized = pb::SignedTransaction {
        body: vec![1; 4096],
        signature: vec![2; 64],
    };

    let status = bounded(client.submit_transaction(submit_request(oversized, false, 0)))
        .await
        .expect_err("refused");
    assert_eq!(status.code(), tonic::Code::OutOfRange);
    assert!(
        status.message().contains("too large") && status.message().contains("1024"),
        "the message says the request is too large and the limit: {}",
        status.message()
    );

    // The same connection still serves.
    let response = bounded(client.submit_transaction(submit_request(transaction(1), false, 0)))
        .await
        .expect("a small request is admitted")
        .into_inner();
    assert_eq!(response.status(), TransactionStatus::Pending);
}

#[tokio::test]
async fn health_reports_serving_for_the_gateway() {
    let gateway = TestGateway::start(FakeBackend::new()).await;
    let endpoint =
        tonic::transport::Endpoint::from_shared(gateway.endpoint()).expect("a valid endpoint");
    let channel = bounded(endpoint.connect()).await.expect("connects");
    let mut health = HealthClient::new(channel);

    for service in ["yuchain.v1.WalletGateway", ""] {
        let response = bounded(health.check(HealthCheckRequest {
            service: service.to_string(),
        }))
        .await
        .expect("answered")
        .into_inner();
        assert_eq!(response.status(), ServingStatus::Serving, "{service:?}");
    }
    let status = bounded(health.check(HealthCheckRequest {
        service: "yuchain.v1.NoSuchService".to_string(),
    }))
    .await
    .expect_err("an unknown service is not found");
    assert_eq!(status.code(), tonic::Code::NotFound);
}

#[tokio::test]
async fn serve_returns_when_shutdown_resolves_and_the_port_closes() {
    let gateway = TestGateway::start(FakeBackend::new()).await;
    let endpoint = gateway.endpoint();
    let mut client = gateway.client().await;
    bounded(client.submit_transaction(submit_request(transaction(1), false, 0)))
        .await
        .expect("serving");
    drop(client);

    gateway.stop().await.expect("serve ends cleanly");

    let reconnect = bounded(yuchain_gateway::WalletGatewayClient::connect(endpoint)).await;
    assert!(reconnect.is_err(), "nothing listens after shutdown");
}

#[tokio::test]
async fn bind_reports_an_address_in_use() {
    let first = TestGateway::start(FakeBackend::new()).await;
    let config = GatewayConfig {
        listen: first.address,
        ..test_config()
    };

    let backend: Arc<dyn yuchain_gateway::Backend> = FakeBackend::new();
    let error = bounded(Gateway::bind(config, backend))
        .await
        .expect_err("the port is taken");

    assert!(matches!(error, GatewayError::Bind { address, .. } if address == first.address));
    assert!(error.to_string().contains("cannot listen on"), "{error}");
}

#[tokio::test]
async fn bind_refuses_a_zero_limit() {
    for config in [
        GatewayConfig {
            request_bytes_max: 0,
            ..test_config()
        },
        GatewayConfig {
            concurrency_per_connection: 0,
            ..test_config()
        },
    ] {
        let backend: Arc<dyn yuchain_gateway::Backend> = FakeBackend::new();
        let error = bounded(Gateway::bind(config, backend))
            .await
            .expect_err("a zero limit is refused");
        assert!(matches!(error, GatewayError::Config(_)), "{error}");
    }
}

#[tokio::test]
async fn reflection_lists_the_gateway_and_describes_its_messages() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let gateway = TestGateway::start(FakeBackend::new()).await;
    let channel = bounded(
        tonic::transport::Endpoint::from_shared(gateway.endpoint())
            .expect("a URL")
            .connect(),
    )
    .await
    .expect("connects");
    let mut client = ServerReflectionClient::new(channel);
    let ask = |request| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };
    let requests = vec![
        ask(MessageRequest::ListServices(String::new())),
        ask(MessageRequest::FileContainingSymbol(
            "yuchain.v1.GetAccountResponse".into(),
        )),
    ];
    let mut answers = bounded(client.server_reflection_info(tokio_stream::iter(requests)))
        .await
        .expect("a stream")
        .into_inner();
    let listed = bounded(answers.message())
        .await
        .expect("ok")
        .expect("an answer");
    let Some(MessageResponse::ListServicesResponse(list)) = listed.message_response else {
        panic!("a service list, got {listed:?}");
    };
    let names: Vec<String> = list
        .service
        .into_iter()
        .map(|service| service.name)
        .collect();
    assert!(
        names.contains(&"yuchain.v1.WalletGateway".to_string()),
        "{names:?}"
    );
    let described = bounded(answers.message())
        .await
        .expect("ok")
        .expect("an answer");
    let Some(MessageResponse::FileDescriptorResponse(files)) = described.message_response else {
        panic!("file descriptors, got {described:?}");
    };
    assert!(!files.file_descriptor_proto.is_empty());
}
