//! [`Cuttable`]: a TCP forwarder to PostgreSQL that a test can cut and
//! restore, so that the database "goes away" for real in the middle of a
//! run; and [`postgres_url`], the database the tests use.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// The PostgreSQL the tests use: `RAMPART_TEST_POSTGRES_URL`
/// (`scripts/test-postgres.sh` sets it), or the local default.
pub fn postgres_url() -> String {
    std::env::var("RAMPART_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A TCP forwarder to PostgreSQL that can be cut (connections dropped,
/// new ones refused) and restored: the database "goes away" for real. It
/// can also cut a connection when the server answers the next `COMMIT`,
/// before the answer reaches the client: the commit happens, the client
/// never hears of it.
pub struct Cuttable {
    /// Where it listens.
    pub addr: SocketAddr,
    up: Arc<AtomicBool>,
    generation: Arc<AtomicU64>,
    cut_at_commit: Arc<AtomicBool>,
    /// Connections open through it.
    live: Arc<AtomicUsize>,
}

/// Counts one open connection until dropped.
struct Live(Arc<AtomicUsize>);

impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Cuttable {
    /// Forwards to `target` from a port of 127.0.0.1 (up).
    pub async fn start(target: SocketAddr) -> Self {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let generation = Arc::new(AtomicU64::new(0));
        let cut_at_commit = Arc::new(AtomicBool::new(false));
        let live = Arc::new(AtomicUsize::new(0));
        let (u, g, c, n) = (
            up.clone(),
            generation.clone(),
            cut_at_commit.clone(),
            live.clone(),
        );
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = l.accept().await else {
                    continue;
                };
                if !u.load(Ordering::SeqCst) {
                    continue; // dropped: refused
                }
                let (u, g, c) = (u.clone(), g.clone(), c.clone());
                let born = g.load(Ordering::SeqCst);
                n.fetch_add(1, Ordering::SeqCst);
                let open = Live(n.clone());
                tokio::spawn(async move {
                    let _open = open; // dropped last, after both sockets
                    let Ok(server) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    let to_server = async {
                        let _ = tokio::io::copy(&mut cr, &mut sw).await;
                    };
                    let to_client = async {
                        let mut buf = vec![0u8; 64 * 1024];
                        loop {
                            let n = match sr.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => n,
                            };
                            // The server's CommandComplete for a COMMIT: it
                            // has committed. The answer is dropped, and the
                            // connection with it.
                            let committed = buf[..n].windows(7).any(|w| w == b"COMMIT\0");
                            if committed && c.swap(false, Ordering::SeqCst) {
                                return;
                            }
                            if cw.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    };
                    let watch = async {
                        while u.load(Ordering::SeqCst) && g.load(Ordering::SeqCst) == born {
                            tokio::time::sleep(Duration::from_millis(2)).await;
                        }
                    };
                    tokio::select! { biased; () = watch => {}, () = to_server => {}, () = to_client => {} }
                });
            }
        });
        Self {
            addr,
            up,
            generation,
            cut_at_commit,
            live,
        }
    }

    /// One in front of the PostgreSQL at `url`, and the URL that goes
    /// through it: in the clear, so that it can see the answer to COMMIT.
    pub async fn postgres(url: &str) -> (Self, String) {
        let opts: sqlx::postgres::PgConnectOptions = url.parse().unwrap();
        let target = tokio::net::lookup_host((opts.get_host(), opts.get_port()))
            .await
            .unwrap()
            .next()
            .unwrap();
        let proxy = Self::start(target).await;
        let via = format!(
            "postgres://{}@{}/{}?sslmode=disable",
            opts.get_username(),
            proxy.addr,
            opts.get_database().unwrap_or("test")
        );
        (proxy, via)
    }

    /// Up, or down: then it returns once every open connection is cut, so
    /// that nothing sent after it reaches the database.
    pub async fn set(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
        if up {
            return;
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while self.live.load(Ordering::SeqCst) > 0 {
            assert!(std::time::Instant::now() < deadline, "connections not cut");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// The next `COMMIT` is carried out; its answer never comes back.
    pub fn lose_the_next_commit_answer(&self) {
        self.cut_at_commit.store(true, Ordering::SeqCst);
    }

    /// Whether the answer [`Cuttable::lose_the_next_commit_answer`] asked
    /// for is still to be lost (no `COMMIT` has been answered since).
    pub fn commit_answer_pending(&self) -> bool {
        self.cut_at_commit.load(Ordering::SeqCst)
    }
}
