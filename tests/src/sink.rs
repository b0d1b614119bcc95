//! A local HTTP endpoint that an SNS topic in the emulator delivers to: what arrives is what
//! a subscriber of the topic would get.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::net::TcpListener;

use crate::http::{read_request, respond};

pub struct HttpSink {
    address: String,
    received: Arc<Mutex<Vec<Value>>>,
    server: tokio::task::JoinHandle<()>,
}

impl HttpSink {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind sink");
        let address = format!("http://{}/", listener.local_addr().expect("sink address"));
        let received = Arc::new(Mutex::new(Vec::new()));
        let store = received.clone();
        let server = tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let store = store.clone();
                tokio::spawn(async move {
                    let request = read_request(&mut socket).await;
                    respond(&mut socket, "200 OK", "").await;
                    if let Some(value) = request.and_then(|r| serde_json::from_slice(&r.body).ok())
                    {
                        store.lock().expect("sink store").push(value);
                    }
                });
            }
        });
        Self {
            address,
            received,
            server,
        }
    }

    pub fn url(&self) -> &str {
        &self.address
    }

    /// Waits until `count` deliveries arrived (or `limit` passed) and returns them all.
    pub async fn wait_for(&self, count: usize, limit: Duration) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let got = self.received.lock().expect("sink store").clone();
            if got.len() >= count || tokio::time::Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for HttpSink {
    fn drop(&mut self) {
        self.server.abort();
    }
}
