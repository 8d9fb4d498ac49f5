//! PostgreSQL goes away under a running API and comes back (issue #7): ingestion answers 503
//! quickly, stores nothing partial, `/readyz` fails, and everything recovers by itself.
//!
//! PostgreSQL only: SQLite is a file in the API's own process, with no server to lose. The
//! outage is made by a TCP relay between the API and the real server: cutting it closes every
//! open connection and refuses new ones, which is what a client sees when the server stops.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use adbudget_testing::{Backend, TestDatabase};
use reqwest::Method;
use serde_json::json;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::AbortHandle;

use crate::helpers::spawn_app_on;

/// A relay from a local port to PostgreSQL that can be cut and restored.
struct Relay {
    port: u16,
    target: SocketAddr,
    state: Arc<Mutex<RelayState>>,
}

#[derive(Default)]
struct RelayState {
    /// The accept loop (absent while cut: the port refuses connections).
    acceptor: Option<AbortHandle>,
    /// Every relayed connection, to close them all at once.
    connections: Vec<AbortHandle>,
}

impl Relay {
    async fn start(target: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let relay = Relay {
            port,
            target,
            state: Arc::default(),
        };
        relay.serve(listener);
        relay
    }

    fn serve(&self, listener: TcpListener) {
        let (state, target) = (self.state.clone(), self.target);
        let acceptor = tokio::spawn({
            let state = state.clone();
            async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    let relayed = tokio::spawn(async move {
                        if let Ok(mut server) = TcpStream::connect(target).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    });
                    state
                        .lock()
                        .unwrap()
                        .connections
                        .push(relayed.abort_handle());
                }
            }
        });
        state.lock().unwrap().acceptor = Some(acceptor.abort_handle());
    }

    /// The database "goes down": open connections are closed, new ones refused.
    fn cut(&self) {
        let mut state = self.state.lock().unwrap();
        if let Some(a) = state.acceptor.take() {
            a.abort();
        }
        for c in state.connections.drain(..) {
            c.abort();
        }
    }

    /// The database is back, on the same address.
    async fn restore(&self) {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        // The aborted accept loop releases the port once its task is dropped.
        while socket
            .bind(SocketAddr::from(([127, 0, 0, 1], self.port)))
            .is_err()
        {
            assert!(Instant::now() < deadline, "port {} stays taken", self.port);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.serve(socket.listen(128).unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_is_503_and_heals_by_itself() {
    let database = TestDatabase::create(Backend::Postgres).expect("test database");
    let mut url = url::Url::parse(&database.url).unwrap();
    let target = SocketAddr::from(([127, 0, 0, 1], url.port().unwrap_or(5432)));
    let relay = Relay::start(target).await;
    url.set_port(Some(relay.port)).unwrap();
    let app = spawn_app_on(database, url.as_str()).await;

    let brand = app.create_brand("Acme", "100", "1000").await;
    let c = app.create_campaign(&brand["id"], "c", json!({})).await;
    let spend = |event: &str| json!({"campaign_id": c["id"], "amount": "5.00", "event_id": event});
    let post = |path: &'static str, body: serde_json::Value| {
        let app = &app;
        async move {
            app.request(Method::POST, path, Some(&app.ingest_token), Some(&body))
                .await
        }
    };
    post("/api/v1/spend", spend("before")).await.expect(201);
    app.request(Method::GET, "/readyz", None, None)
        .await
        .expect(200);

    relay.cut();
    let started = Instant::now();
    let down = post("/api/v1/spend", spend("during")).await;
    let took = started.elapsed();
    assert_eq!(
        down.status, 503,
        "ingestion during the outage: {}",
        down.body
    );
    assert_eq!(down.body["error"]["code"], "unavailable");
    assert!(
        took < Duration::from_secs(3),
        "the 503 comes quickly, not after a hang ({took:?})"
    );
    let batch = json!({"events": [spend("batch-1"), spend("batch-2")]});
    let resp = post("/api/v1/spend/batch", batch.clone()).await;
    assert_eq!(resp.status, 503, "batch during the outage: {}", resp.body);
    let ready = app.request(Method::GET, "/readyz", None, None).await;
    assert_eq!(ready.status, 503, "/readyz during the outage");
    assert_eq!(ready.body["database"], "unreachable");
    let read = app.get(&format!("/api/v1/brands/{}", brand["id"])).await;
    assert_eq!(
        read.status, 503,
        "a read during the outage (not a 401): {}",
        read.body
    );

    relay.restore().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while app.request(Method::GET, "/readyz", None, None).await.status != 200 {
        assert!(Instant::now() < deadline, "/readyz recovers by itself");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The events refused during the outage were not stored, not even in part: sent again, they are
    // new, and the totals count each event once.
    post("/api/v1/spend", spend("during")).await.expect(201);
    let resp = post("/api/v1/spend/batch", batch).await.expect(201);
    assert_eq!(
        (resp["recorded"].as_u64(), resp["replayed"].as_u64()),
        (Some(2), Some(0))
    );
    assert_eq!(app.campaign(&c["id"]).await["daily_spend"], "20.00");
    assert_eq!(app.brand(&brand["id"]).await["daily_spend"], "20.00");
}
