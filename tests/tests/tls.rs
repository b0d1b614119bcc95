//! The functions' HTTPS client, end to end: the real revert-ingress binary talks to the
//! emulator over TLS, as it talks to AWS.
//!
//! sgwarden builds its own HTTPS client (rustls on ring, `crates/aws/src/sdk.rs`) instead of
//! the SDK's default one. These tests hold what that client must keep: it trusts the roots
//! the platform gives it (`SSL_CERT_FILE` included) and no others, and it reaches AWS through
//! the proxy the environment names, with TLS checked end to end through the tunnel.

use serde_json::json;
use sgwarden_tests::proxy::ConnectProxy;
use sgwarden_tests::revert_world::*;
use sgwarden_tests::runtime::Outcome;
use sgwarden_tests::Emulator;

/// The settings of a function that speaks only HTTPS to the emulator, plus `extra`.
fn over_tls(w: &World, extra: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
    let mut vars = vec![("AWS_ENDPOINT_URL", w.emulator.https_endpoint())];
    vars.extend(extra.iter().cloned());
    vars
}

#[tokio::test]
async fn the_binary_trusts_the_roots_it_is_given_and_no_others() {
    let w = World::on(Emulator::start_with_tls()).await;
    let event = w.ssh_opened(&w.protected).await;
    let opened = vec!["ingress tcp/22 0.0.0.0/0", PRE_EXISTING];

    // The emulator's certificate is signed by a CA the platform's roots do not hold: the call
    // fails as an unreachable AWS (retried by Lambda), and nothing is changed.
    let outcomes = w.serve(&over_tls(&w, &[]), vec![event.clone()]).await;
    match &outcomes[0] {
        Outcome::Error { body, .. } => assert_eq!(body["errorType"], "AwsUnavailable", "{body}"),
        other => panic!("an unknown CA must fail the invocation: {other:?}"),
    }
    assert!(w.emulator.calls().is_empty(), "no request got past TLS");
    assert_eq!(w.rules(&w.protected).await, opened);

    // Given that CA as the platform's bundle, the same event is reverted over TLS.
    let ca = w.emulator.ca_file().display().to_string();
    let outcomes = w
        .serve(&over_tls(&w, &[("SSL_CERT_FILE", ca)]), vec![event])
        .await;
    assert!(
        matches!(&outcomes[0], Outcome::Response { .. }),
        "{outcomes:?}"
    );
    assert_eq!(w.rules(&w.protected).await, vec![PRE_EXISTING]);
    assert_eq!(w.emulator.calls_of("RevokeSecurityGroupIngress").len(), 1);
}

#[tokio::test]
async fn the_binary_reaches_aws_through_the_proxy_the_environment_names() {
    let w = World::on(Emulator::start_with_tls()).await;
    let proxy = ConnectProxy::start().await;
    let event = w.ssh_opened(&w.protected).await;
    let ca = w.emulator.ca_file().display().to_string();
    let vars = over_tls(&w, &[("SSL_CERT_FILE", ca), ("HTTPS_PROXY", proxy.url())]);

    let outcomes = w.serve(&vars, vec![event]).await;
    assert!(
        matches!(&outcomes[0], Outcome::Response { .. }),
        "{outcomes:?}"
    );
    let operations: Vec<String> = w
        .emulator
        .calls()
        .into_iter()
        .map(|c| c.operation)
        .collect();
    assert_eq!(w.rules(&w.protected).await, vec![PRE_EXISTING]);
    // Every connection went through the proxy, to the emulator's HTTPS port, and carried the
    // calls the emulator served (the function's own identity, the read, the revoke).
    let tls_target = w.emulator.https_endpoint().replace("https://", "");
    let targets = proxy.targets();
    assert!(!targets.is_empty(), "the proxy saw no connection");
    assert!(targets.iter().all(|t| *t == tls_target), "{targets:?}");
    assert_eq!(
        operations,
        [
            "GetCallerIdentity",
            "DescribeSecurityGroupRules",
            "RevokeSecurityGroupIngress"
        ],
        "{}",
        json!(targets)
    );
}
