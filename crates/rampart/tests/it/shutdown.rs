//! Graceful shutdown: in-flight requests finish, new connections are not
//! accepted.

use std::time::Duration;

use rampart_testkit::Harness;

use crate::ROUTES;

#[tokio::test]
async fn shutdown_drains_in_flight_requests() {
    let mut h = Harness::start(&ROUTES.replace("timeout = \"500ms\"", "timeout = \"5s\"")).await;
    let c = h.client();
    let in_flight = tokio::spawn(async move { c.get("/delay/800").await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(h.upstream.count(), 1, "the slow request is in flight");
    let addr = h.addr();
    h.stop().await;
    let r = in_flight.await.unwrap();
    assert_eq!(r.status, 200, "in-flight request was cut: {}", r.text());
    // After shutdown nothing accepts connections on that address.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
