//! A webhook receiver for tests: a real HTTP/1.1 server on a free port that answers with the
//! statuses queued (200 once they run out), and keeps every request with the time it came.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A request as the receiver got it.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: http::HeaderMap,
    pub body: String,
    pub at: Instant,
}

/// An HTTP server on a free port that answers with the statuses queued (200 once they run out)
/// and keeps every request.
pub struct Receiver {
    pub url: String,
    got: Arc<Mutex<Vec<Received>>>,
    /// Statuses to answer with, in order; 200 once empty.
    pub answers: Arc<Mutex<VecDeque<u16>>>,
}

impl Receiver {
    /// Starts it on the current tokio runtime.
    pub async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        let got = Arc::new(Mutex::new(Vec::new()));
        let answers = Arc::new(Mutex::new(VecDeque::new()));
        let (g, a) = (got.clone(), answers.clone());
        tokio::spawn(async move {
            loop {
                let (mut sock, _) = listener.accept().await.unwrap();
                let (g, a) = (g.clone(), a.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let (head_end, length) = loop {
                        let n = sock.read(&mut chunk).await.unwrap();
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..i]).to_lowercase();
                            let length = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .map_or(0, |v| v.trim().parse::<usize>().unwrap());
                            break (i + 4, length);
                        }
                    };
                    while buf.len() < head_end + length {
                        let n = sock.read(&mut chunk).await.unwrap();
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                    let mut headers = http::HeaderMap::new();
                    for line in head.lines().skip(1) {
                        if let Some((k, v)) = line.split_once(':') {
                            headers.insert(
                                http::HeaderName::from_bytes(k.trim().as_bytes()).unwrap(),
                                v.trim().parse().unwrap(),
                            );
                        }
                    }
                    let body =
                        String::from_utf8_lossy(&buf[head_end..head_end + length]).to_string();
                    let status = a.lock().unwrap().pop_front().unwrap_or(200);
                    g.lock().unwrap().push(Received {
                        headers,
                        body,
                        at: Instant::now(),
                    });
                    let answer = format!(
                        "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    );
                    let _ = sock.write_all(answer.as_bytes()).await;
                });
            }
        });
        Receiver { url, got, answers }
    }

    /// Every request so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }
}
