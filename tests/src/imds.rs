//! A local stand-in for EC2 instance metadata (IMDSv2), for `sgwarden register`: a session
//! token from `PUT /latest/api/token`, then `GET /latest/meta-data/...` with that token;
//! without the token every read is refused (401), as IMDSv2 does. Point the SDK at it with
//! `AWS_EC2_METADATA_SERVICE_ENDPOINT`.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::http::{read_request, respond, respond_with};

const TOKEN: &str = "sgwarden-test-imds-token";

pub struct Metadata {
    endpoint: String,
    server: tokio::task::JoinHandle<()>,
}

impl Metadata {
    /// Serves `values` by path below `/latest/meta-data/` (`instance-id`, `public-ipv4`,
    /// `local-ipv4`, `placement/region`).
    pub async fn start(values: &[(&str, &str)]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind metadata");
        let endpoint = format!(
            "http://{}",
            listener.local_addr().expect("metadata address")
        );
        let values: Arc<HashMap<String, String>> = Arc::new(
            values
                .iter()
                .map(|(k, v)| (format!("/latest/meta-data/{k}"), v.to_string()))
                .collect(),
        );
        let server = tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let values = values.clone();
                tokio::spawn(async move {
                    let Some(request) = read_request(&mut socket).await else {
                        return;
                    };
                    match (request.method(), request.path()) {
                        ("PUT", "/latest/api/token") => {
                            let ttl = request
                                .header("x-aws-ec2-metadata-token-ttl-seconds")
                                .unwrap_or("21600")
                                .to_string();
                            respond_with(
                                &mut socket,
                                "200 OK",
                                &[("x-aws-ec2-metadata-token-ttl-seconds", &ttl)],
                                TOKEN,
                            )
                            .await
                        }
                        _ if request.header("x-aws-ec2-metadata-token") != Some(TOKEN) => {
                            respond(&mut socket, "401 Unauthorized", "").await
                        }
                        ("GET", path) => match values.get(path) {
                            Some(value) => respond(&mut socket, "200 OK", value).await,
                            None => respond(&mut socket, "404 Not Found", "").await,
                        },
                        _ => respond(&mut socket, "405 Method Not Allowed", "").await,
                    }
                });
            }
        });
        Self { endpoint, server }
    }

    /// The value for `AWS_EC2_METADATA_SERVICE_ENDPOINT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }
}

impl Drop for Metadata {
    fn drop(&mut self) {
        self.server.abort();
    }
}
